"""The text view, for unattended runs: log lines as they come (bounded), then a summary.

Whatever is printed here ends up in the saved notebook, so the view prints the
first `head` lines, then only counts, and shows the last `tail` lines at the end.
A progress bar is one line, overwritten with `\\r` (see `jobs.progress`).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any, TextIO

from hfjobs_magic.jobs.progress import REPLACE, extend, new_lines
from hfjobs_magic.jobs.record import FINAL_STAGES, Update
from hfjobs_magic.money import usd
from hfjobs_magic.views.bundle import duration, push_states
from hfjobs_magic.views.operating import metrics_text, notices_of, schedule_text
from hfjobs_magic.views.terminal import collapse_cr

METRICS_EVERY_S = 60.0  # a metrics line at most once a minute: the saved notebook keeps them all
PROGRESS_EVERY_S = 5.0  # a progress bar's state is printed at most this often: the saved notebook keeps every write


class TextView:
    def __init__(self, *, head: int = 500, tail: int = 50, out: TextIO | None = None,
                 progress_every: float = PROGRESS_EVERY_S, metrics_every: float = METRICS_EVERY_S) -> None:
        self.head, self.out = head, out or sys.stdout
        self.progress_every = progress_every
        self._printed = 0
        self._held: deque[str] = deque(maxlen=tail)
        self._held_total = 0
        self._stage: str | None = None
        self._message: str | None = None
        self._push_seen: set[str] = set()
        self._open = False  # the last log line is printed without its newline, so a bar's next state can overwrite it
        self._open_width = 0
        self._bar: str | None = None  # a bar's newest state, not printed yet (they are printed at most every few s)
        self._bar_printed_at = 0.0
        self.metrics_every = metrics_every
        self._metrics_at: float | None = None
        self._noticed: set[str] = set()

    def started(self, record: dict[str, Any]) -> None:
        self._say(f"[hfjob] submitted {record['id']} on {record['flavor']}: {record['url']}")

    def update(self, update: Update) -> None:
        """Lines and stage changes in the order they happened: a final stage only after the job's last line."""
        record = update.record
        if record["stage"] not in FINAL_STAGES:
            self._stage_line(record)
        if record.get("message") != self._message and not update.final:
            self._message = record.get("message")
            if self._message:  # e.g. the Hub not answering: worth a line, once
                self._say(f"[hfjob] {self._message}")
        self._lines(update.lines)
        self._operating(record, final=update.final)
        if update.final:
            self._held_lines(record)
            self._stage_line(record)
            self._finish(record)
        else:
            self._pushes(record)

    def scheduled(self, record: dict[str, Any]) -> None:
        self._say(f"[hfjob] {schedule_text(record)}")
        self._say(f"[hfjob] list scheduled jobs with %hfjob_ps --scheduled; stop this one with "
                  f"%hfjob_unschedule {record['id']}")

    def _operating(self, record: dict[str, Any], final: bool) -> None:
        """A metrics line now and then (the first sample, then every `metrics_every` s); each notice once."""
        now = time.monotonic()
        due = self._metrics_at is None or now - self._metrics_at >= self.metrics_every
        if record.get("metrics") and due and not final:
            self._metrics_at = now
            self._say(f"[hfjob] metrics: {metrics_text(record['metrics'])}")
        for kind, text in notices_of(record):
            if kind not in self._noticed:
                self._noticed.add(kind)
                self._say(f"[hfjob] NOTICE: {text}")

    def _stage_line(self, record: dict[str, Any]) -> None:
        if record["stage"] != self._stage:
            self._stage = record["stage"]
            self._say(f"[hfjob] {record['id']} is {self._stage}")

    def _pushes(self, record: dict[str, Any]) -> None:
        """A line whenever what the storage confirms (or a push failure) changes, while the job runs."""
        lines = {text for level, text in push_states(record) if level != "wait"}
        for line in sorted(lines - self._push_seen):
            self._say(f"[hfjob] push {line}")
        self._push_seen = lines

    def _lines(self, lines: list[str]) -> None:
        if self._printed >= self.head and self._held_total:  # the common case of a long log: keep the tail only
            self._held_total += new_lines(lines)
            extend(self._held, lines)
        else:
            for line in lines:
                self._line(line)
        self._show_bar(force=False)
        self.out.flush()

    def _line(self, line: str) -> None:
        text = collapse_cr(line)
        if line.startswith(REPLACE) and self._held_total:
            self._held[-1] = text
        elif line.startswith(REPLACE) and self._open:
            self._bar = text
        elif self._printed < self.head:
            self._show_bar(force=True)
            self.out.write(("\n" if self._open else "") + text)
            self._open, self._open_width = True, len(text)
            self._printed += 1
        else:
            if not self._held_total:
                self._say(f"[hfjob] ... more output; the last {self._held.maxlen} lines follow at the end")
            self._held.append(text)
            self._held_total += 1

    def _show_bar(self, *, force: bool) -> None:
        """A bar's newest state over its line (`\\r`, as notebook frontends and terminals render it)."""
        now = time.monotonic()
        if self._bar is None or not (force or now - self._bar_printed_at >= self.progress_every):
            return
        self.out.write("\r" + self._bar.ljust(self._open_width))
        self._open_width, self._bar, self._bar_printed_at = len(self._bar), None, now

    def _held_lines(self, record: dict[str, Any]) -> None:
        """The last lines of a long log, which were held back while it ran."""
        if self._held_total:
            skipped = self._held_total - len(self._held)
            if skipped:
                self._say(f"[hfjob] ... {skipped} lines not shown (full log: %hfjob_logs {record['id']})")
            self._say("\n".join(self._held))

    def _finish(self, record: dict[str, Any]) -> None:
        summary = (
            f"[hfjob] {record['id']} ended {record['stage']} after {duration(record.get('duration_s'))}, "
            f"cost {usd(record.get('cost_usd'))}"
        )
        if record.get("message"):
            summary += f": {record['message']}"
        self._say(summary)
        for level, text in push_states(record):
            self._say(f"[hfjob] push {text}" if level != "warn" else f"[hfjob] WARNING: push {text}")

    def end_line(self) -> None:
        """Finish the open log line, e.g. before someone else prints (an interrupt)."""
        self._show_bar(force=True)
        if self._open:
            self.out.write("\n")
            self._open = False
        self.out.flush()

    def _say(self, text: str) -> None:
        self._show_bar(force=True)
        self.out.write(("\n" if self._open else "") + text + "\n")
        self._open = False
        self.out.flush()

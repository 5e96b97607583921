"""The text view, for unattended runs: log lines as they come (bounded), then a summary.

Whatever is printed here ends up in the saved notebook, so the view prints the
first `head` lines, then only counts, and shows the last `tail` lines at the end.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import Any, TextIO

from hfjobs_magic.jobs.watch import Update
from hfjobs_magic.money import usd
from hfjobs_magic.views.bundle import duration, push_states
from hfjobs_magic.views.terminal import collapse_cr


class TextView:
    def __init__(self, *, head: int = 500, tail: int = 50, out: TextIO | None = None) -> None:
        self.head, self.out = head, out or sys.stdout
        self._printed = 0
        self._held: deque[str] = deque(maxlen=tail)
        self._held_total = 0
        self._stage: str | None = None
        self._message: str | None = None
        self._push_seen: set[str] = set()

    def started(self, record: dict[str, Any]) -> None:
        self._say(f"[hfjob] submitted {record['id']} on {record['flavor']}: {record['url']}")

    def update(self, update: Update) -> None:
        record = update.record
        if record["stage"] != self._stage:
            self._stage = record["stage"]
            self._say(f"[hfjob] {record['id']} is {self._stage}")
        if record.get("message") != self._message and not update.final:
            self._message = record.get("message")
            if self._message:  # e.g. the Hub not answering: worth a line, once
                self._say(f"[hfjob] {self._message}")
        self._lines([collapse_cr(line) for line in update.lines])
        if update.final:
            self._finish(record)
        else:
            self._pushes(record)

    def _pushes(self, record: dict[str, Any]) -> None:
        """A line whenever what the storage confirms (or a push failure) changes, while the job runs."""
        lines = {text for level, text in push_states(record) if level != "wait"}
        for line in sorted(lines - self._push_seen):
            self._say(f"[hfjob] push {line}")
        self._push_seen = lines

    def _lines(self, lines: list[str]) -> None:
        room = max(0, self.head - self._printed)
        shown, held = lines[:room], lines[room:]
        if shown:
            self.out.write("\n".join(shown) + "\n")
            self._printed += len(shown)
        if held:
            if not self._held_total:
                self._say(f"[hfjob] ... more output; the last {self._held.maxlen} lines follow at the end")
            self._held.extend(held)
            self._held_total += len(held)
        self.out.flush()

    def _finish(self, record: dict[str, Any]) -> None:
        if self._held_total:
            skipped = self._held_total - len(self._held)
            if skipped:
                self._say(f"[hfjob] ... {skipped} lines not shown (full log: %hfjob_logs {record['id']})")
            self.out.write("\n".join(self._held) + "\n")
        summary = (
            f"[hfjob] {record['id']} ended {record['stage']} after {duration(record.get('duration_s'))}, "
            f"cost {usd(record.get('cost_usd'))}"
        )
        if record.get("message"):
            summary += f": {record['message']}"
        self._say(summary)
        for level, text in push_states(record):
            self._say(f"[hfjob] push {text}" if level != "warn" else f"[hfjob] WARNING: push {text}")

    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

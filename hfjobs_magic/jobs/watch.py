"""Follow one job: its stage, its log lines (masked, none lost or repeated) and its pushes.

A `JobWatch` owns a daemon thread that polls the stage with backoff and turns
everything into `Update`s for the views; a helper thread reads the log stream
(a blocking iterator) into a queue. One stop event, one monotonic clock.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hfjobs_magic.jobs.guards import Guards, idle_cancel_reason, is_gpu_flavor, notices
from hfjobs_magic.jobs.metrics import MetricsReader, MetricsState
from hfjobs_magic.jobs.progress import ProgressFolder, merge
from hfjobs_magic.jobs.record import IDLE_NOTICE, JobRecord, PushTarget, Update, apply_job_info, cell_error
from hfjobs_magic.mask import SecretMasker
from hfjobs_magic.remote import storage
from hfjobs_magic.remote.hub import HubClient, error_line, is_transient, retry_transient

_END = object()  # the log reader is done
_FOLLOWED = object()  # the followed stream ended (the job is final): ask for the stage now, not at the next tick
# The --outputs wrapper's progress lines (hfjobs_magic/cell/persist.py writes them).
PUSHED_LINE = re.compile(r"^\[hfjob\] pushed (?P<files>\d+) files? \((?P<size>[^)]*)\) to (?P<where>.+?)"
                         r"(?:@(?P<ref>[0-9a-f]{7,40}))?$")
FAILED_LINE = re.compile(r"^\[hfjob\] push to (?P<where>.+?) FAILED: (?P<error>.*)$")
NO_ANSWER = "no answer from the Hub"  # the record's message while the Hub does not answer
CATCH_UP_LINES = 50  # the log's last lines compared with ours once a followed stream ends


@dataclass
class Pacing:
    """How often the watcher asks and shows: cheap for jobs that run for hours, prompt at their end."""

    emit_every: float = 0.25  # at most four view updates a second
    heartbeat: float = 2.0  # at least this often, so elapsed time and cost tick while a job is silent
    poll_first: float = 1.0  # stage polling starts here and backs off while nothing changes
    poll_max: float = 30.0  # cheap for hours: the end of the log stream and the first line trigger a poll at once
    push_every: float = 15.0  # how often pushes are re-verified while the job runs
    log_grace: float = 15.0  # after a final stage, how long the log stream may stay silent before we stop reading
    max_batch: int = 5000  # lines taken from the queue per round


class LogReader(threading.Thread):
    """Reads `fetch_job_logs(follow=True)` into a queue; restarts it without repeating a line."""

    def __init__(self, client: HubClient, job_id: str, namespace: str, out: queue.Queue, stop: threading.Event,
                 follow: bool = True) -> None:
        super().__init__(name=f"hfjob-logs-{job_id[:8]}", daemon=True)
        self.client, self.job_id, self.namespace = client, job_id, namespace
        self.out, self.stop_event, self.follow = out, stop, follow
        self.received = 0
        self._received_at_try = 0  # lines by the last failed try: one that got some is retried at once
        self.recent: deque[str] = deque(maxlen=CATCH_UP_LINES)  # the last lines received, to compare at the end
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.error = retry_transient(self.stop_event, self._read_whole, made_progress=self._took_lines)
        finally:
            self.out.put(_END)

    def _read_whole(self) -> None:
        self._read_once(follow=self.follow)
        if not self.stop_event.is_set():  # followed or replayed, the stream may have been cut short
            if self.follow:
                self.out.put(_FOLLOWED)  # the watcher polls the stage while we catch up
            self._catch_up()

    def _took_lines(self) -> bool:
        took, self._received_at_try = self.received > self._received_at_try, self.received
        return took

    def _read_once(self, follow: bool) -> None:
        """One pass over the stream; a restarted pass replays from the start, so skip what we have."""
        skip = self.received
        for index, line in enumerate(self.client.logs(self.job_id, self.namespace, follow=follow)):
            if self.stop_event.is_set():
                return
            if index < skip:
                continue
            self.received += 1
            self.recent.append(line)
            self.out.put(line)

    def _catch_up(self) -> None:
        """The client ends a cleanly closed stream once the job is final, even when it closed early (and a
        replay, without follow, after one try).

        One cheap look at the log's last lines tells whether we have everything; if not, or if ours
        repeat themselves (blank or identical lines, where a cut cannot be told from the end), replay the rest.
        """
        if not log_complete(self.client, self.job_id, self.namespace, self.received, self.recent):
            self._read_once(follow=False)


def log_complete(client: HubClient, job_id: str, namespace: str, received: int, recent: deque[str]) -> bool:
    """Whether `received` lines from the log's start, the last of them `recent`, are the ended job's whole log."""
    theirs = list(client.logs(job_id, namespace, follow=False, tail=CATCH_UP_LINES + 1))
    if len(theirs) <= CATCH_UP_LINES:  # the whole log: its length says it
        return len(theirs) == received
    ours = list(recent)[-CATCH_UP_LINES:]
    return len(ours) == CATCH_UP_LINES and theirs[1:] == ours and not repeats(ours)


def repeats(lines: list[str]) -> bool:
    """True when `lines` has a period shorter than itself: the same lines could end the log further on."""
    return any(lines[shift:] == lines[:-shift] for shift in range(1, len(lines)))


class JobWatch:
    """Follows one job until it reaches a final stage, feeding `on_update`."""

    def __init__(
        self,
        client: HubClient,
        record: JobRecord,
        on_update: Callable[[Update], None],
        *,
        secrets: list[str] | tuple[str, ...] = (),
        pacing: Pacing | None = None,
        follow_logs: bool = True,
        guards: Guards | None = None,
    ) -> None:
        self.client, self.record, self.on_update = client, record, on_update
        self.masker = SecretMasker(secrets)
        self.progress = ProgressFolder()
        self.pacing = pacing or Pacing()
        self.stop_event = threading.Event()
        self._lines: queue.Queue = queue.Queue()
        self._reader = LogReader(client, record.id, record.namespace, self._lines, self.stop_event, follow_logs)
        self._thread = threading.Thread(target=self._run, name=f"hfjob-watch-{record.id[:8]}", daemon=True)
        self.guards = guards or Guards()
        self.metrics = MetricsState()
        self._metrics_reader = MetricsReader(client, record.id, record.namespace, self.metrics, self.stop_event) \
            if follow_logs else None
        self._metrics_seen = 0
        self._cancel_failed: str | None = None  # why --cancel-if-idle could not cancel, shown as a notice
        self._gpu = is_gpu_flavor(record.flavor, client.known_hardware())
        self.error: BaseException | None = None
        self._leftover: list[str] = []
        self._verified_final = False  # pushes were verified once the job was final

    # -- control ----------------------------------------------------------------------
    def start(self) -> JobWatch:
        self._reader.start()
        if self._metrics_reader is not None:
            self._metrics_reader.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the loop ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as err:  # report, never die silently in a thread
            self.error = err
            self.record.message = f"Stopped following the job: {err}"
        finally:
            self.stop_event.set()  # ends the log reader too
            if not self._verified_final:
                self._verify_pushes()
            lines = self._drain()
            self._say_cell_error()
            self.on_update(self._update(lines, final=True))

    def _say_cell_error(self) -> None:
        """A failed job's message starts with the error its cell raised and where, as the notebook numbers it."""
        error = cell_error(self.record.log_tail) if self.record.stage == "ERROR" else None
        if error and error not in (self.record.message or ""):
            self.record.message = error + (f"; {self.record.message}" if self.record.message else "")

    def _loop(self) -> None:
        """Poll the stage with backoff; a stream that ends or starts talking triggers a poll at once, and a
        final stage triggers the final push verification at once, while the log stream drains."""
        p = self.pacing
        poll_gap, next_poll, next_push, next_emit = p.poll_first, 0.0, time.monotonic() + p.push_every, 0.0
        pending: list[str] = []
        final_since: float | None = None
        reader_done, dirty, last_emit, last_line_at, heard = False, False, 0.0, 0.0, False
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now >= next_poll:
                before = (self.record.stage, self.record.message)
                changed = self._poll_stage()
                dirty |= (self.record.stage, self.record.message) != before
                poll_gap = p.poll_first if changed else min(poll_gap * 1.5, p.poll_max)
                next_poll = now + poll_gap
                if self.record.final and final_since is None:
                    final_since = now
                    self._verify_pushes()
                    self._verified_final = True
            # After the final stage, read the log to its end; give up only once it has been silent for log_grace.
            if final_since is not None and (reader_done or now - max(final_since, last_line_at) > p.log_grace):
                break
            if now >= next_push and self.record.push:
                self._verify_pushes()
                next_push = now + p.push_every
            timeout = max(0.01, min(next_poll, next_emit if pending else next_poll, now + 1.0) - time.monotonic())
            batch, reader_done, ask_now = self._take(timeout, reader_done)
            first_lines = bool(batch) and not heard  # a job that talks has started: say RUNNING now
            heard |= bool(batch)
            if (ask_now and final_since is None) or (first_lines and self.record.stage == "SCHEDULING"):
                next_poll = time.monotonic()
            pending = merge(pending, batch)
            dirty |= self._operate()
            now = time.monotonic()
            last_line_at = now if batch else last_line_at
            if (pending or dirty or now - last_emit >= p.heartbeat) and now >= next_emit:
                self.on_update(self._update(pending))
                pending, dirty, last_emit, next_emit = [], False, now, now + p.emit_every
        self._leftover = pending

    def _update(self, lines: list[str], final: bool = False) -> Update:
        series = self.metrics.series() if self.record.metrics else {}
        return Update(self.record.as_json(), lines, final=final, series=series)

    def _operate(self) -> bool:
        """Metrics into the record, the notices, and --cancel-if-idle; True when the views should hear of it."""
        changed = self.metrics.version != self._metrics_seen
        if changed:
            self._metrics_seen = self.metrics.version
            self.record.metrics = self.metrics.as_json()
        found = notices(self.record, self.guards, self._gpu)
        if self._cancel_failed and not self.record.final:
            found[IDLE_NOTICE] = self._cancel_failed
        changed |= found != self.record.notices
        self.record.notices = found
        reason = idle_cancel_reason(self.record, self.guards.cancel_if_idle_s) if self._gpu else None
        if reason and not self.record.ended_because:
            self.record.ended_because = reason
            try:
                self.client.cancel(self.record.id, self.record.namespace)
            except Exception as err:  # say so, and do not try again every second
                self.record.ended_because, self.guards = None, replace(self.guards, cancel_if_idle_s=None)
                detail = error_line(err)
                self._cancel_failed = f"--cancel-if-idle could not cancel the idle job ({detail}): cancel it yourself"
            changed = True
        return changed

    def _take(self, timeout: float, reader_done: bool) -> tuple[list[str], bool, bool]:
        """Lines waiting in the queue (masked and recorded), whether the reader has ended, and whether
        the stage should be asked for now (the followed stream ended)."""
        if reader_done:
            self.stop_event.wait(timeout)
            return [], True, False
        raw: list[str] = []
        ask_now = False
        try:
            item = self._lines.get(timeout=timeout)
            while True:
                if item is _END:
                    return self._accept(raw), True, True
                if item is _FOLLOWED:
                    ask_now = True
                else:
                    raw.append(item)
                if len(raw) >= self.pacing.max_batch:
                    break
                item = self._lines.get_nowait()
        except queue.Empty:
            pass
        return self._accept(raw), False, ask_now

    def _accept(self, raw: list[str]) -> list[str]:
        """Every line goes this way once: masked, progress bars folded, kept in the record's tail, read for
        push reports."""
        lines = self.progress.fold(self.masker.mask_lines(raw))
        self.record.add_lines(lines)
        note_push_lines(self.record.push, lines)
        return lines

    def _drain(self) -> list[str]:
        """Lines not yet handed to the views: the last pending batch and whatever is still queued."""
        raw: list[str] = []
        while True:
            try:
                item = self._lines.get_nowait()
            except queue.Empty:
                break
            if item is not _END and item is not _FOLLOWED:
                raw.append(item)
        lines = self._accept(raw)
        rest, self._leftover = self._leftover, []
        return merge(rest, lines)

    def _poll_stage(self) -> bool:
        """Refresh stage and times from the Hub; True when the stage changed."""
        try:
            info = self.client.inspect(self.record.id, self.record.namespace)
        except Exception as err:
            if is_transient(err):  # say so: a silent view during an outage looks like a hung job
                if not (self.record.message or "").startswith(NO_ANSWER):  # once per outage, whatever it answers
                    self.record.message = f"{NO_ANSWER} ({error_line(err, 120)}); still trying"
                return False
            raise
        before = self.record.stage
        apply_job_info(self.record, info)
        return self.record.stage != before

    def _verify_pushes(self) -> None:
        """Ask the storage what landed since the job was created: pushed means verified, nothing less."""
        for target in self.record.push:
            try:
                target.commits = self._landed(target)
            except Exception as err:
                target.check_error = f"could not ask {target.where}: {str(err).strip()[:200] or type(err).__name__}"
                continue
            target.checked, target.check_error = True, None
            target.verified = bool(target.commits)

    def _landed(self, target: PushTarget) -> list[dict[str, Any]]:
        if target.repo_type == "bucket":
            return self.client.bucket_files_since(*target.bucket, self.record.created_at)
        if target.repo_type in storage.SCHEMES:
            return storage.objects_since(target.repo_id, self.record.created_at)
        return self.client.commits_since(target.repo_id, target.repo_type, self.record.created_at)


def note_push_lines(targets: list[PushTarget], lines: list[str]) -> None:
    """The wrapper's progress lines become events on their target: shown, never taken as proof."""
    if not targets:  # the usual case: no need to look at every line of the log stream
        return
    by_name = {t.where: t for t in targets}
    for line in lines:
        if not line.startswith("[hfjob] push"):
            continue
        if (found := PUSHED_LINE.match(line)) and (target := by_name.get(found["where"])):
            target.reported.append({"files": int(found["files"]), "size": found["size"], "ref": found["ref"]})
            target.failure = None
        elif (found := FAILED_LINE.match(line)) and (target := by_name.get(found["where"])):
            target.failure = found["error"]

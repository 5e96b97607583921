"""Scheduled jobs: the store, cron parsing, and the thread that fires runs on time.

A run is an ordinary job made by `JobManager.create`, labelled with its
scheduled job's id (`SCHEDULED_LABEL`) and recorded as the scheduled job's last
run. Records persist as JSON under `root`, like jobs; unlike a job, a scheduled
job must keep its secret values to use them on every run, so they are kept in a
separate file readable by the owner only. Runs missed while the sandbox was down
are not caught up: on start, each schedule's next run is computed from now.

For tests, `time_scale` speeds up the scheduler's clock: at 60, a minute of
schedule passes every second, so `* * * * *` fires every second of real time
through this same path. The times it reports (`nextJobRunAt`, `lastJob.at`) are
then on that fast clock.
"""

from __future__ import annotations

import json
import logging
import os
import secrets as secrets_lib
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cronsim import CronSim, CronSimError

from hfjobs_magic.sandbox.jobs import SECRET_MASK, TERMINAL_STAGES, Job, JobManager

log = logging.getLogger(__name__)

SCHEDULED_LABEL = "scheduled-job-id"  # on every run, naming the scheduled job that made it
ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@hourly": "0 * * * *"}
SYNTAX = ("use @annually, @yearly, @monthly, @weekly, @daily, @hourly, or five cron fields "
          "(minute hour day-of-month month day-of-week), e.g. '0 9 * * 1' or '*/5 * * * *'")
MAX_WAIT_S = 30.0  # the scheduler re-reads the clock at least this often


class ScheduleError(ValueError):
    """A schedule the sandbox cannot run; the message says what is accepted."""


def cron_of(schedule: object) -> str:
    """The five-field cron expression of a schedule, or ScheduleError saying why it is not one."""
    if not isinstance(schedule, str) or not schedule.strip():
        raise ScheduleError(f"'schedule' must be a non-empty string: {SYNTAX}")
    expression = ALIASES.get(schedule.strip().lower(), schedule.strip())
    if len(expression.split()) != 5:
        raise ScheduleError(f"Invalid schedule {schedule!r}: {SYNTAX}")
    try:
        next(CronSim(expression, datetime.now(timezone.utc)))
    except (CronSimError, StopIteration) as err:
        raise ScheduleError(f"Invalid schedule {schedule!r} ({err or 'it never fires'}): {SYNTAX}") from err
    return expression


def next_run(schedule: str, after: datetime) -> datetime:
    """The first time strictly after `after` that the schedule fires (UTC)."""
    return next(CronSim(cron_of(schedule), after))


class Clock:
    """UTC now, optionally running `scale` times faster than real time (tests only)."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("the schedule time scale must be positive")
        self.scale = scale
        self._wall, self._mono = datetime.now(timezone.utc), time.monotonic()

    def now(self) -> datetime:
        if self.scale == 1.0:
            return datetime.now(timezone.utc)
        return self._wall + timedelta(seconds=(time.monotonic() - self._mono) * self.scale)

    def real_seconds(self, until: datetime) -> float:
        """Real seconds until the clock shows `until`."""
        return (until - self.now()).total_seconds() / self.scale


def iso(moment: datetime | None) -> str | None:
    """A time as the Hub writes it: ISO 8601 with milliseconds and a Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if moment else None


@dataclass
class ScheduledJob:
    """One scheduled job: the job spec each run gets, when to run it, and what ran last."""

    id: str
    seq: int
    namespace: str
    owner_type: str
    creator: str
    spec: dict  # JobManager fields, as `job_routes.parse_spec` made them
    secret_names: list[str]
    schedule: str
    suspend: bool
    concurrency: bool
    created_at: str
    last_job_id: str | None = None
    last_job_at: str | None = None
    next_at: datetime | None = field(default=None, repr=False)  # not persisted: recomputed on start

    def to_api(self) -> dict:
        """The `ScheduledJobInfo` shape; secret values masked."""
        last = {"id": self.last_job_id, "at": self.last_job_at} if self.last_job_id else None
        return {
            "id": self.id,
            "createdAt": self.created_at,
            "schedule": self.schedule,
            "suspend": self.suspend,
            "concurrency": self.concurrency,
            "jobSpec": job_spec_api(self.spec, self.secret_names),
            "status": {"lastJob": last, "nextJobRunAt": None if self.suspend else iso(self.next_at)},
            "owner": {"id": f"sandbox-{self.namespace}", "name": self.namespace, "type": self.owner_type},
        }

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "next_at"}


def job_spec_api(spec: dict, secret_names: list[str]) -> dict:
    """A JobManager spec back in the `jobSpec` shape (`JobSpec` reads `timeout`); other fields pass through."""
    renamed = {"image": "dockerImage", "space_id": "spaceId"}
    out = {renamed.get(key, key): value for key, value in spec.items()}
    out["secrets"] = dict.fromkeys(secret_names, SECRET_MASK)
    return out


class ScheduleStore:
    """All scheduled jobs of one sandbox, and the thread that fires their runs."""

    def __init__(self, root: Path, jobs: JobManager, time_scale: float = 1.0) -> None:
        self.root = root
        self.jobs = jobs
        self.clock = Clock(time_scale)
        self._lock = threading.RLock()
        self._items: dict[str, ScheduledJob] = {}
        self._secrets: dict[str, dict[str, str]] = {}
        self._seq = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        root.mkdir(parents=True, exist_ok=True)
        self._load()

    # -- the store -----------------------------------------------------------------
    def create(self, *, namespace: str, owner_type: str, creator: str, spec: dict, secrets: dict[str, str],
               schedule: str, suspend: bool, concurrency: bool) -> ScheduledJob:
        cron_of(schedule)
        with self._lock:
            self._seq += 1
            item = ScheduledJob(id=f"{int(time.time()):08x}{secrets_lib.token_hex(8)}", seq=self._seq,
                                namespace=namespace, owner_type=owner_type, creator=creator, spec=spec,
                                secret_names=sorted(secrets), schedule=schedule, suspend=suspend,
                                concurrency=concurrency, created_at=iso(self.clock.now()) or "")
            item.next_at = next_run(schedule, self.clock.now())
            self._items[item.id], self._secrets[item.id] = item, dict(secrets)
            (self.root / item.id).mkdir()
            self._save_secrets(item.id)
            self._save(item)
        self._wake.set()
        return item

    def get(self, namespace: str, item_id: str) -> ScheduledJob | None:
        item = self._items.get(item_id)
        return item if item is not None and item.namespace == namespace else None

    def list(self, namespace: str, labels: list[tuple[str, str | None]]) -> list[ScheduledJob]:
        """A namespace's scheduled jobs with every label (`k=v`, or bare `k`), newest first."""
        with self._lock:
            items = [i for i in self._items.values() if i.namespace == namespace and _has_labels(i, labels)]
        return sorted(items, key=lambda i: i.seq, reverse=True)

    def snapshot(self, item: ScheduledJob) -> dict:
        with self._lock:
            return item.to_api()

    def delete(self, item: ScheduledJob) -> None:
        """Forget it; runs it already started go on, as on the Hub."""
        with self._lock:
            self._items.pop(item.id, None)
            self._secrets.pop(item.id, None)
            shutil.rmtree(self.root / item.id, ignore_errors=True)

    def set_suspended(self, item: ScheduledJob, suspend: bool) -> None:
        with self._lock:
            item.suspend = suspend
            item.next_at = next_run(item.schedule, self.clock.now())  # a resumed schedule never catches up
            self._save(item)
        self._wake.set()

    def reschedule(self, item: ScheduledJob, schedule: str) -> None:
        cron_of(schedule)
        with self._lock:
            item.schedule, item.next_at = schedule, next_run(schedule, self.clock.now())
            self._save(item)
        self._wake.set()

    def set_labels(self, item: ScheduledJob, labels: dict[str, str]) -> None:
        with self._lock:
            item.spec = {**item.spec, "labels": dict(labels)}
            self._save(item)

    def running_run(self, item: ScheduledJob) -> Job | None:
        """Its last run, if that is still going."""
        last = self.jobs.get(item.namespace, item.last_job_id) if item.last_job_id else None
        return last if last is not None and last.stage not in TERMINAL_STAGES else None

    def run_now(self, item: ScheduledJob, initiator: str) -> Job:
        """Start a run: the scheduled job's spec, secrets and labels, plus its id as a label."""
        with self._lock:
            spec, secrets = dict(item.spec), dict(self._secrets.get(item.id, {}))
        spec["labels"] = {**spec.get("labels", {}), SCHEDULED_LABEL: item.id}
        job = self.jobs.create(namespace=item.namespace, owner_type=item.owner_type, initiator=initiator,
                               secrets=secrets, **spec)
        with self._lock:
            item.last_job_id, item.last_job_at = job.id, iso(self.clock.now())
            if item.id in self._items:
                self._save(item)
        return job

    # -- the scheduler thread --------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="hfjob-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                wait = self.fire_due()
            except Exception:  # a sandbox bug must not stop every schedule for good
                log.exception("scheduler")
                wait = 1.0
            self._wake.wait(wait)
            self._wake.clear()

    def fire_due(self) -> float:
        """Start every run that is due; return how many real seconds until the next one is."""
        now = self.clock.now()
        with self._lock:
            due = [i for i in self._items.values() if not i.suspend and i.next_at and i.next_at <= now]
            for item in due:
                item.next_at = next_run(item.schedule, max(now, item.next_at or now))
        for item in due:
            if self._stopping.is_set():
                break
            if item.concurrency or self.running_run(item) is None:  # else skipped, as the Hub does
                self.run_now(item, item.creator)
        with self._lock:
            upcoming = [i.next_at for i in self._items.values() if not i.suspend and i.next_at]
        return min([MAX_WAIT_S, *(max(0.0, self.clock.real_seconds(t)) for t in upcoming)])

    # -- persistence -----------------------------------------------------------------
    def _save(self, item: ScheduledJob) -> None:
        path = self.root / item.id / "scheduled-job.json"
        if not path.parent.is_dir():
            return  # deleted meanwhile
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(item.record(), indent=1))
        os.replace(tmp, path)

    def _save_secrets(self, item_id: str) -> None:
        path = self.root / item_id / "secrets.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(self._secrets[item_id], file)

    def _load(self) -> None:
        names = {f.name for f in fields(ScheduledJob)} - {"next_at"}
        now = self.clock.now()
        for path in sorted(self.root.glob("*/scheduled-job.json")):
            try:
                item = ScheduledJob(**{k: v for k, v in json.loads(path.read_text()).items() if k in names})
                secrets = json.loads((path.parent / "secrets.json").read_text())
                item.next_at = next_run(item.schedule, now)
            except (OSError, ValueError, TypeError) as err:
                log.warning("skipping unreadable scheduled job %s: %s", path, err)
                continue
            self._items[item.id], self._secrets[item.id] = item, secrets
            self._seq = max(self._seq, item.seq)


def _has_labels(item: ScheduledJob, labels: list[tuple[str, str | None]]) -> bool:
    own = item.spec.get("labels") or {}
    return all(k in own and (v is None or own[k] == v) for k, v in labels)

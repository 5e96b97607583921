"""The job record: what a job cell leaves in the notebook (`application/vnd.hfjob+json`).

One mutable object owned by the watcher; views get frozen snapshots (`as_json`).
Its shape is a public contract (DESIGN.md section 4).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from hfjobs_magic.jobs.progress import extend, new_lines

MIME = "application/vnd.hfjob+json"
FINAL_STAGES = frozenset({"COMPLETED", "CANCELED", "ERROR", "DELETED"})
TAIL_LINES = 40
MAX_LINE_CHARS = 400
URL_TARGETS = ("s3", "gs", "bucket")  # targets named by their URL
BUCKET_URL = "hf://buckets/"
QUEUE_NOTICE, IDLE_NOTICE = "queue_wait", "idle_gpu"  # the kinds of the record's `notices`


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def unpushed(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The declared targets that, by the storage's own answer, received nothing from a COMPLETED job.

    A target whose last check got no answer (`check_error`) is not among them: an earlier answer is stale.
    """
    if record.get("stage") != "COMPLETED":
        return []
    targets = record.get("push") or []
    return [t for t in targets
            if t.get("declared", True) and t.get("checked") and not t.get("check_error") and not t.get("commits")]


def cell_error(tail: list[str]) -> str | None:
    """"ValueError: boom (%%hfjob cell, line 3)": the exception a job's traceback ended with, and where
    in the notebook it was raised (the last `File "%%hfjob cell..."` frame), read from its log tail."""
    frames = [i for i, line in enumerate(tail) if line.lstrip().startswith('File "%%hfjob cell')]
    if not frames:
        return None
    frame = tail[frames[-1]].strip()
    where = frame[len('File "'):].replace('", line', ", line").split(", in ")[0]
    after = [line for line in tail[frames[-1] + 1:] if line.strip() and not line.startswith((" ", "\t", "^"))]
    return f"{after[0].strip()} ({where})" if after else None


@dataclass
class PushTarget:
    """A declared push target. `verified` only ever comes from the storage itself (the watcher asks it);
    `reported` and `failure` are what the job's --outputs wrapper said, shown but never trusted."""

    repo_id: str  # a Hub repo id, or the URL for S3/GCS and HF buckets (hf://buckets/ns/name/prefix)
    repo_type: str = "model"  # "model", "dataset", "space", "bucket", or "s3"/"gs"
    commits: list[dict[str, str]] = field(default_factory=list)  # {"oid", "title", "date"}; objects for S3/GCS
    verified: bool = False
    checked: bool = False  # the storage answered at least once
    check_error: str | None = None  # why the last look at the storage failed
    reported: list[dict[str, Any]] = field(default_factory=list)  # {"files", "size", "ref"} per pushed line
    failure: str | None = None  # the wrapper's last "push ... FAILED" message
    declared: bool = True  # named by --push; False for a repo found in the cell's own push calls

    @property
    def where(self) -> str:
        """How the wrapper names it in its log lines: "dataset alice/run", or the URL."""
        return self.repo_id if self.repo_type in URL_TARGETS else f"{self.repo_type} {self.repo_id}"

    @property
    def bucket(self) -> tuple[str, str]:
        """An HF bucket target's (bucket id, prefix): `hf://buckets/ns/name/a/b` -> ("ns/name", "a/b")."""
        parts = [p for p in self.repo_id.removeprefix(BUCKET_URL).split("/") if p]
        return "/".join(parts[:2]), "/".join(parts[2:])

    def as_json(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "repo_type": self.repo_type,
            "commits": list(self.commits),
            "verified": self.verified,
            "checked": self.checked,
            "check_error": self.check_error,
            "reported": list(self.reported),
            "failure": self.failure,
            "declared": self.declared,
        }


@dataclass
class JobRecord:
    """A job as the notebook keeps it; `as_json` is the public record (DESIGN.md section 4)."""

    id: str
    namespace: str
    url: str
    flavor: str
    stage: str = "SCHEDULING"
    message: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    usd_per_hour: float | None = None
    notebook: str | None = None
    cell: str | None = None
    push: list[PushTarget] = field(default_factory=list)
    returns: list[dict[str, Any]] = field(default_factory=list)  # {"name", "type", "bytes"} set in the kernel
    pulled: str | None = None  # the one-line summary of --pull
    tail_lines: int = TAIL_LINES
    log_lines_seen: int = 0
    metrics: dict[str, Any] | None = None  # jobs.metrics.MetricsState.as_json(): latest, peak, idle_gpu_s
    notices: dict[str, str] = field(default_factory=dict)  # kind -> text (jobs.guards): a long queue, an idle GPU
    ended_because: str | None = None  # why we cancelled it ourselves (--cancel-if-idle): its message once CANCELED
    schedule: dict[str, Any] | None = None  # a --schedule cell: {"id", "schedule", "next_runs"}
    _tail: deque[str] = field(default_factory=deque, repr=False)

    @property
    def final(self) -> bool:
        return self.stage in FINAL_STAGES

    def add_lines(self, lines: list[str]) -> None:
        """Keep only the last `tail_lines` lines, each cut to a sane length.

        A line starting with `\r` (a progress bar's next state, see `jobs.progress`) overwrites the last one.
        """
        self.log_lines_seen += new_lines(lines)
        extend(self._tail, [line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + "…"
                            for line in lines[-self.tail_lines :]])
        while len(self._tail) > self.tail_lines:
            self._tail.popleft()

    @property
    def log_tail(self) -> list[str]:
        return list(self._tail)

    def running_seconds(self, now: datetime | None = None) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at or now or datetime.now(timezone.utc)
        return max(0.0, (end - self.started_at).total_seconds())

    def cost_usd(self, now: datetime | None = None) -> float | None:
        """Cost so far: the hourly price times the time spent running."""
        if self.usd_per_hour is None:
            return None
        return round(self.usd_per_hour * self.running_seconds(now) / 3600, 6)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "namespace": self.namespace,
            "url": self.url,
            "flavor": self.flavor,
            "stage": self.stage,
            "message": self.message,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_s": round(self.running_seconds(), 1),
            "cost_usd": self.cost_usd(),
            "usd_per_hour": self.usd_per_hour,
            "notebook": self.notebook,
            "cell": self.cell,
            "push": [p.as_json() for p in self.push],
            "returns": list(self.returns),
            "pulled": self.pulled,
            "log_lines": self.log_lines_seen,
            "log_tail": self.log_tail,
            "notices": [{"kind": kind, "text": text} for kind, text in self.notices.items()],
        } | ({"metrics": self.metrics} if self.metrics else {}) | ({"schedule": self.schedule} if self.schedule else {})


@dataclass(frozen=True)
class Update:
    """What the views get: a snapshot of the record and the lines new since the last update."""

    record: dict[str, Any]
    lines: list[str] = field(default_factory=list)
    final: bool = False
    series: dict[str, list[float]] = field(default_factory=dict)  # recent metrics per name, for sparklines


def apply_job_info(record: JobRecord, info: Any) -> None:
    """Copy the server's view of a job onto our record."""
    record.stage = str(getattr(info.status.stage, "value", info.status.stage))
    record.message = info.status.message
    if record.ended_because and record.stage == "CANCELED":  # we cancelled it: say why, not just "canceled"
        record.message = record.ended_because
    record.created_at = info.created_at or record.created_at
    record.started_at = info.started_at or record.started_at
    record.finished_at = info.finished_at
    if record.final and record.finished_at is None:
        record.finished_at = datetime.now(timezone.utc)

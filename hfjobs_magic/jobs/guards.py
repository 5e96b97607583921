"""What deserves a word while a job runs: a long wait for hardware, an idle GPU (and, if asked, its cancel).

Pure decisions on the record and the metrics; the watcher shows them as the record's `notices`
and does the cancel. Thresholds come from `%config HFJobMagics.queue_wait_warn`/`idle_gpu_warn`
and `--cancel-if-idle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from hfjobs_magic.jobs.metrics import IDLE_GPU_PCT
from hfjobs_magic.jobs.record import IDLE_NOTICE as IDLE
from hfjobs_magic.jobs.record import QUEUE_NOTICE as QUEUE
from hfjobs_magic.jobs.record import JobRecord
from hfjobs_magic.money import usd
from hfjobs_magic.remote import hardware


@dataclass(frozen=True)
class Guards:
    """When to warn about a long queue or an idle GPU, and when to cancel an idle one."""

    queue_warn_s: float = 300.0
    idle_gpu_warn_s: float = 600.0
    cancel_if_idle_s: float | None = None


def spoken(seconds: float) -> str:
    """12 minutes, 1 minute, 40 seconds: how a person says how long something lasted."""
    seconds = max(0, round(seconds))
    if seconds >= 120:
        return f"{round(seconds / 60)} minutes"
    if seconds >= 60:
        return "1 minute" if seconds < 90 else "2 minutes"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def queue_notice(record: JobRecord, threshold_s: float, now: datetime | None = None) -> str | None:
    """A job waiting for hardware longer than `threshold_s`: how long, and what to do."""
    if record.stage != "SCHEDULING" or record.created_at is None:
        return None
    waited = ((now or datetime.now(timezone.utc)) - record.created_at).total_seconds()
    if waited < threshold_s:
        return None
    said = f" ({record.message})" if record.message else ""
    return (f"Waiting for hardware for {spoken(waited)}: no {record.flavor} machine is free yet{said}. "
            f"Wait, or cancel it (%hfjob_cancel {record.id}) and run the cell on another flavor "
            "(`hf jobs hardware` lists them); larger GPUs often wait longest.")


def is_gpu_flavor(name: str, known: list[hardware.Flavor] | None = None) -> bool:
    table = {f.name: f for f in known} if known else hardware.BY_NAME
    flavor = table.get(name) or hardware.BY_NAME.get(name)
    return bool(flavor and flavor.is_gpu)


def idle_notice(record: JobRecord, threshold_s: float) -> str | None:
    """On a GPU flavor, a GPU idle longer than `threshold_s`: for how long, and what it cost so far."""
    metrics = record.metrics or {}
    idle_s = float(metrics.get("idle_gpu_s") or 0.0)
    if record.stage != "RUNNING" or idle_s < threshold_s:
        return None
    total = float(metrics.get("idle_gpu_total_s") or idle_s)
    spent = f" (about {usd(record.usd_per_hour * total / 3600)} spent on an idle GPU so far)" \
        if record.usd_per_hour else ""
    return (f"The GPU has been idle (under {IDLE_GPU_PCT:g} %) for {spoken(idle_s)}{spent}. If the job has "
            f"nothing left for it, cancel it; --cancel-if-idle DURATION does that by itself.")


def idle_cancel_reason(record: JobRecord, cancel_after_s: float | None) -> str | None:
    """Why --cancel-if-idle cancels this job now, or None."""
    idle_s = float((record.metrics or {}).get("idle_gpu_s") or 0.0)
    if cancel_after_s is None or record.stage != "RUNNING" or idle_s < cancel_after_s:
        return None
    return f"cancelled because the GPU was idle for {spoken(idle_s)} (--cancel-if-idle)"


def notices(record: JobRecord, guards: Guards, gpu: bool, now: datetime | None = None) -> dict[str, str]:
    """The notices the record should carry now, by kind."""
    found = {QUEUE: queue_notice(record, guards.queue_warn_s, now)}
    if gpu:
        found[IDLE] = idle_notice(record, guards.idle_gpu_warn_s)
    return {kind: text for kind, text in found.items() if text}

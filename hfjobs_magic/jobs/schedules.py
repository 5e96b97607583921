"""`%hfjob_ps --scheduled` and `%hfjob_unschedule`: the scheduled jobs of a namespace, and deleting one."""

from __future__ import annotations

from typing import Any

from hfjobs_magic.jobs.joblist import age
from hfjobs_magic.remote.hub import HubClient, hub_errors

MAX_LISTED = 50


def print_scheduled(client: HubClient, namespace: str | None) -> None:
    """One row per scheduled job: id, schedule, state, next run, last run (its id, age and stage)."""
    with hub_errors(client, "cannot list your scheduled jobs"):
        ns = namespace or client.username()
        items = client.scheduled_jobs(ns)
    if not items:
        print(f"No scheduled jobs in {ns}.")
        return
    rows = [("ID", "SCHEDULE", "STATE", "NEXT RUN", "LAST RUN", "FLAVOR", "NOTEBOOK / CELL")]
    rows += [_row(client, ns, item) for item in items[:MAX_LISTED]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _row(client: HubClient, ns: str, item: Any) -> tuple[str, ...]:
    spec, status = item.job_spec, item.status
    labels = (spec.labels if spec else None) or {}
    next_at = status.next_job_run_at.strftime("%Y-%m-%d %H:%M UTC") if status and status.next_job_run_at else "-"
    return (item.id, str(item.schedule), "suspended" if item.suspend else "active", next_at,
            _last_run(client, ns, status.last_job if status else None), str(spec.flavor if spec else "-"),
            f"{labels.get('hfjob-notebook', '-')} / {labels.get('hfjob-cell', '-')}")


def _last_run(client: HubClient, ns: str, last: Any) -> str:
    """`<id> <age> <stage>` of the latest run, or "never"; a run we cannot inspect still shows its id."""
    if last is None:
        return "never"
    try:
        stage = str(client.inspect(last.id, ns).status.stage)
    except Exception:  # the list stays useful when one look-up fails
        stage = "?"
    return f"{last.id} {age(last.at)} {stage}"


def unschedule(client: HubClient, scheduled_id: str, namespace: str | None) -> None:
    with hub_errors(client, f"cannot unschedule {scheduled_id}"):
        ns = namespace or client.username()
    not_found = (f"there is no scheduled job {scheduled_id} in {ns}. %hfjob_ps --scheduled lists them; for another "
                 "user or org, run %config HFJobMagics.namespace = 'NAME' first.")
    with hub_errors(client, f"cannot unschedule {scheduled_id}", not_found=not_found):
        client.unschedule(scheduled_id, ns)
    print(f"Scheduled job {scheduled_id} deleted: no more runs will start (a run already started goes on).")

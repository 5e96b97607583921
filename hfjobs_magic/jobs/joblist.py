"""The line magics' work: find a job, list recent jobs, print logs, cancel."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from IPython.core.error import UsageError

from hfjobs_magic.jobs.history import JOB_ID, History
from hfjobs_magic.jobs.progress import REPLACE, ProgressFolder
from hfjobs_magic.jobs.watch import CATCH_UP_LINES, log_complete
from hfjobs_magic.mask import SecretMasker
from hfjobs_magic.remote.hub import LABEL_TOOL, HubClient, hub_errors


@dataclass(frozen=True)
class JobRef:
    id: str
    namespace: str


JOB_URL = re.compile(r"^https?://\S+/jobs/(?P<namespace>[\w.-]+)/(?P<id>[A-Za-z0-9_-]+)/?$")


def resolve(client: HubClient, history: History, job: str, namespace: str | None) -> JobRef:
    """A job id (or a prefix known to the local history, or the job's URL as the views show it) and the
    namespace it runs in."""
    if url := JOB_URL.search(job):
        return JobRef(url["id"], url["namespace"])
    if not JOB_ID.fullmatch(job):
        raise UsageError(f"{job!r} is not a job id: ids are letters and digits, or give the job's URL "
                         "(%hfjob_ps lists your recent jobs)")
    entry = history.find(job)
    if entry is not None:
        return JobRef(entry.id, entry.namespace)
    if namespace:
        return JobRef(job, namespace)
    with hub_errors(client, f"cannot find job {job}"):
        return JobRef(job, client.username())


@contextmanager
def about_job(client: HubClient, ref: JobRef, doing: str) -> Iterator[None]:
    """Hub failures on one job as a clear line; an unknown id says where it was looked for."""
    not_found = (f"there is no job {ref.id} in {ref.namespace}. Check the id (%hfjob_ps lists your recent "
                 "jobs); for a job of another user or org, run %config HFJobMagics.namespace = 'NAME' first.")
    with hub_errors(client, f"{doing} job {ref.id}", not_found=not_found):
        yield


def age(moment: datetime | None) -> str:
    if moment is None:
        return "?"
    seconds = int((datetime.now(timezone.utc) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def print_jobs(client: HubClient, history: History, namespace: str | None, limit: int = 20) -> None:
    """Recent jobs started from notebooks, newest first, with the notebook cell they came from."""
    with hub_errors(client, "cannot list your jobs"):
        ns = namespace or client.username()
        jobs = client.list_jobs(ns, labels={LABEL_TOOL: "1"})
    jobs.sort(key=lambda j: j.created_at or datetime.min.replace(tzinfo=timezone.utc), reverse=True)
    if not jobs:
        print(f"No jobs started from notebooks in {ns}.")
        return
    rows = [("JOB ID", "STAGE", "FLAVOR", "CREATED", "NOTEBOOK / CELL")]
    known = {e.id: e for e in history.entries()}  # read the history once, not once per job
    for job in jobs[:limit]:
        labels = job.labels or {}
        entry = known.get(job.id)
        notebook = (entry.notebook if entry and entry.notebook else labels.get("hfjob-notebook")) or "-"
        rows.append((job.id, str(job.status.stage), str(job.flavor), age(job.created_at),
                     f"{notebook} / {labels.get('hfjob-cell', '-')}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def print_logs(client: HubClient, history: History, job: str, tail: int | None, namespace: str | None) -> None:
    """A job's log, secrets masked, each progress bar as its last state (as the live view shows it)."""
    if tail is not None and tail <= 0:
        raise UsageError("--tail must be a positive number of lines")
    ref = resolve(client, history, job, namespace)
    masker, folder = SecretMasker([client.token or ""]), ProgressFolder()
    held: str | None = None  # the last line, printed once we know no progress update replaces it
    lines = whole_log(client, ref) if tail is None else client.logs(ref.id, ref.namespace, follow=False, tail=tail)
    with about_job(client, ref, "cannot read the logs of"):  # the lines are read here, so failures are said here
        for line in lines:
            for shown in folder.fold([masker.mask(line)]):
                if held is not None and not shown.startswith(REPLACE):
                    print(held)
                held = shown.removeprefix(REPLACE)
    if held is not None:
        print(held)


def whole_log(client: HubClient, ref: JobRef, tries: int = 3) -> Iterator[str]:
    """The job's log from its start: without follow the client tries once, so a stream cut short is resumed."""
    received, recent = 0, deque(maxlen=CATCH_UP_LINES)
    for _ in range(tries):
        for index, line in enumerate(client.logs(ref.id, ref.namespace, follow=False)):
            if index >= received:
                received += 1
                recent.append(line)
                yield line
        if log_complete(client, ref.id, ref.namespace, received, recent):
            return


def cancel(client: HubClient, history: History, job: str, namespace: str | None) -> Any:
    ref = resolve(client, history, job, namespace)
    with about_job(client, ref, "cannot cancel"):
        client.cancel(ref.id, ref.namespace)
    print(f"Cancel requested for job {ref.id}; it ends as CANCELED.")

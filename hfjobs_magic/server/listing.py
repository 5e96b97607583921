"""What the panel shows about each job: one plain JSON row, built field by field from the Hub's `JobInfo`.

Rows never carry the job's environment, secrets or command (the script travels in the environment),
only what the panel shows. A job started from a cell is traced back to its notebook through the
local history (the full path the kernel knew) or, failing that, the `hfjob-notebook` label (a
basename); the cell is found in the saved notebook by the hash the `hfjob-cell` label carries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfjobs_magic.cell.wrapping import cell_hash
from hfjobs_magic.jobs.history import Entry, History

if TYPE_CHECKING:
    from huggingface_hub._jobs_api import JobInfo

    from hfjobs_magic.remote.hub import HubClient

ACTIVE = ("RUNNING", "SCHEDULING")
LIMIT = 50  # running jobs first, then the most recent: enough for a sidebar
MAGIC = "%%hfjob"
NOTEBOOK_LABEL, CELL_LABEL = "hfjob-notebook", "hfjob-cell"


def stage_of(job: JobInfo) -> str:
    stage = job.status.stage
    return str(getattr(stage, "value", stage))


def sort_key(job: JobInfo) -> tuple[bool, float]:
    """Running (or scheduling) jobs first, then newest first."""
    created = job.created_at.timestamp() if job.created_at else 0.0
    return stage_of(job) not in ACTIVE, -created


def list_rows(client: HubClient, history: History, root: Path, now: datetime | None = None) -> list[dict[str, Any]]:
    """The user's jobs (the namespace of the server's login) as the panel's rows."""
    jobs = sorted(client.list_jobs(client.username()), key=sort_key)[:LIMIT]
    known = {entry.id: entry for entry in history.entries()}
    finder = CellFinder(root)
    moment = now or datetime.now(timezone.utc)
    price = cache(client.price_per_hour)  # once per flavor, even when the live hardware list cannot be had
    return [job_row(job, price(str(job.flavor or "")), known.get(job.id), finder, moment) for job in jobs]


def job_row(job: JobInfo, usd_per_hour: float | None, entry: Entry | None, finder: CellFinder,
            now: datetime) -> dict[str, Any]:
    labels = job.labels or {}
    seconds = duration_s(job, now)
    row: dict[str, Any] = {
        "id": job.id,
        "namespace": job.owner.name,
        "name": labels.get("name"),
        "stage": stage_of(job),
        "message": job.status.message,
        "flavor": job.flavor,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "duration_s": seconds,
        "usd_per_hour": usd_per_hour,
        "cost_usd": None if usd_per_hour is None else usd_per_hour * (seconds or 0.0) / 3600,  # billed once started
        "url": job.url,
    }
    return row | finder.locate(entry.notebook if entry else None, labels.get(NOTEBOOK_LABEL), labels.get(CELL_LABEL))


def duration_s(job: JobInfo, now: datetime) -> float | None:
    """Seconds since the job started, up to its end; None before it starts."""
    if job.started_at is None:
        return None
    return max(0.0, ((job.finished_at or now) - job.started_at).total_seconds())


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def saved_cell_hash(source: str) -> str | None:
    """The hash the magic gave a saved `%%hfjob` cell (IPython hands it the body plus a final newline)."""
    lines = source.lstrip("\n").split("\n", 1)
    if (lines[0].split() or [""])[0] != MAGIC:
        return None
    body = lines[1] if len(lines) > 1 else ""
    return cell_hash(body if body.endswith("\n") or not body else body + "\n")


@dataclass
class CellFinder:
    """Finds a job's notebook in the server's file tree and its cell there (`notebook_hashes` caches)."""

    root: Path

    def __post_init__(self) -> None:
        self.root = self.root.resolve()

    def locate(self, full_path: str | None, label: str | None, cell: str | None) -> dict[str, Any]:
        """`notebook` (a name to show), `path` (relative to the root, when the file is there), `cell_index`."""
        found = self._inside_root(full_path)
        if found is None and label and Path(label).name == label:  # a label is a basename, never a path
            found = self._inside_root(label)
        name = Path(full_path).name if full_path else label
        index = self._cell_index(found, cell) if found and cell else None
        path = found.relative_to(self.root).as_posix() if found else None
        return {"notebook": name, "path": path, "cell": cell, "cell_index": index}

    def _inside_root(self, full_path: str | None) -> Path | None:
        if not full_path:
            return None
        candidate = Path(full_path)
        candidate = (candidate if candidate.is_absolute() else self.root / candidate).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None  # a notebook outside the server's tree cannot be opened from the panel
        return candidate

    def _cell_index(self, path: Path, cell: str) -> int | None:
        hashes = notebook_hashes(path)
        return hashes.index(cell) if cell in hashes else None


# path -> (size, mtime_ns) it had when hashed, its hashes: the panel refreshes every few seconds and
# hashing a cell runs IPython's transformer, so a notebook is read and hashed again only once it changed.
_HASHED: dict[Path, tuple[tuple[int, int], list[str | None]]] = {}


def notebook_hashes(path: Path) -> list[str | None]:
    """Per cell of a saved notebook, the hash of its `%%hfjob` cell (None for other cells); [] if unreadable."""
    try:
        stat = path.stat()
    except OSError:
        return []
    version = (stat.st_size, stat.st_mtime_ns)
    if (known := _HASHED.get(path)) is None or known[0] != version:
        _HASHED[path] = known = (version, _hash_cells(path))
    return known[1]


def _hash_cells(path: Path) -> list[str | None]:
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return []
    hashes: list[str | None] = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            hashes.append(None)
            continue
        source = cell.get("source", "")
        hashes.append(saved_cell_hash("".join(source) if isinstance(source, list) else str(source)))
    return hashes

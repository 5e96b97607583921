"""Reading notebooks without a kernel: the `%%hfjob` cells and the job records a run left."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfjobs_magic.record import MIME

MAGIC = "%%hfjob"


@dataclass(frozen=True)
class JobCell:
    index: int  # position among all cells, 0-based
    line: str  # the flags after %%hfjob
    body: str  # the cell without its magic line


def read(path: str | Path) -> Any:
    import nbformat

    return nbformat.read(str(path), as_version=4)


def job_cells(nb: Any) -> list[JobCell]:
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        first, _, rest = cell.source.lstrip().partition("\n")
        if first.split(" ", 1)[0] == MAGIC:
            cells.append(JobCell(index, first[len(MAGIC):].strip(), rest))
    return cells


def job_records(nb: Any) -> list[tuple[int, dict[str, Any]]]:
    """(cell index, last record) for every cell whose outputs hold a job record."""
    found = []
    for index, cell in enumerate(nb.cells):
        records = [o["data"][MIME] for o in cell.get("outputs", []) if MIME in o.get("data", {})]
        if records:
            found.append((index, records[-1]))
    return found

"""Reading notebooks without a kernel: the `%%hfjob` cells and the job records a run left."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfjobs_magic.jobs.record import MIME

MAGIC = "%%hfjob"


@dataclass(frozen=True)
class JobCell:
    index: int  # position among all cells, 0-based
    line: str  # the flags after %%hfjob
    body: str  # the cell without its magic line


def read(path: str | Path) -> Any:
    """The notebook at `path`; a file that is missing or not a notebook is a `UsageError` naming it."""
    import nbformat
    from IPython.core.error import UsageError

    try:
        return nbformat.read(str(path), as_version=4)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read it ({err.strerror or err})") from None
    except Exception as err:  # nbformat raises JSON, schema and attribute errors alike for a non-notebook
        detail = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), type(err).__name__)
        raise UsageError(f"{path} is not a Jupyter notebook ({detail[:200]})") from None


def job_cells(nb: Any) -> list[JobCell]:
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        first, _, rest = cell.source.lstrip().partition("\n")
        if first.split(" ", 1)[0] == MAGIC:
            cells.append(JobCell(index, first[len(MAGIC):].strip(), rest))
    return cells


def cells_above(nb: Any, index: int) -> list[tuple[int, str]]:
    """(index, source) of the code cells above cell `index`: what a top-to-bottom run defines before it."""
    return [(i, c.source) for i, c in enumerate(nb.cells[:index]) if c.cell_type == "code"]


def job_records(nb: Any) -> list[tuple[int, dict[str, Any]]]:
    """(cell index, last record) for every cell whose outputs hold a job record."""
    found = []
    for index, cell in enumerate(nb.cells):
        records = [o["data"][MIME] for o in cell.get("outputs", []) if MIME in o.get("data", {})]
        if records:
            found.append((index, records[-1]))
    return found

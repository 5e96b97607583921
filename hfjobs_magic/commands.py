"""What `hfjob check`, `hfjob export` and `hfjob run` do; cli.py only parses their arguments."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from hfjobs_magic import notebook as nbio
from hfjobs_magic.cell.spec import Defaults, JobSpec, build_spec, parse_line, read_pyproject_defaults
from hfjobs_magic.checks import FAIL, CheckResult, context_for, line_error_results, run_checks
from hfjobs_magic.mask import TOKEN_LITERAL, hide_token_literals

if TYPE_CHECKING:
    from hfjobs_magic.cell.script import Carrier

FAILURE_LINES = 30  # of an error's message, printed by `hfjob run`: the failing checks or the job's log tail


@dataclass(frozen=True)
class CellReport:
    notebook: str
    cell: int
    checks: list[CheckResult]

    def as_json(self) -> dict[str, Any]:
        return {"notebook": self.notebook, "cell": self.cell, "checks": [c.as_json() for c in self.checks]}

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)


def cell_spec(path: Path, cell: nbio.JobCell) -> JobSpec:
    defaults = Defaults(**read_pyproject_defaults(path.parent))
    return build_spec(parse_line(cell.line), defaults)


def static_carrier(nb: Any, cell: nbio.JobCell) -> Carrier:
    """Without a kernel, the carry comes from the code cells above the job cell, read by name."""
    from hfjobs_magic.cell.carry import from_cells

    above = nbio.cells_above(nb, cell.index)
    return lambda names: from_cells(names, above)


def check_cell(path: Path, cell: nbio.JobCell, client: Any, nb: Any = None) -> list[CheckResult]:
    """The checklist of one cell without a kernel: `variables` reads the cells above (values that only
    a kernel knows are skipped).

    A cell that cannot become a script still gets every check (the script check says why); an invalid
    line fails the check its flag concerns.
    """
    try:
        spec = cell_spec(path, cell)
    except UsageError as err:
        return line_error_results(err)
    ctx = context_for(cell.body, spec, client=client, variables=None, notebook=str(path), notebook_dir=path.parent,
                      first_line=2,  # line numbers as the notebook shows them, under the %%hfjob line
                      carrier=static_carrier(nb, cell) if nb is not None else None)
    return run_checks(ctx)


def check_notebooks(paths: list[str], as_json: bool) -> int:
    from hfjobs_magic.jobs.runner import checks_table
    from hfjobs_magic.remote.hub import HubClient

    client = HubClient()
    reports = []
    for name in paths:
        path = Path(name)
        nb = nbio.read(path)
        for cell in nbio.job_cells(nb):
            reports.append(CellReport(str(path), cell.index, check_cell(path, cell, client, nb)))
    if as_json:
        print(json.dumps([r.as_json() for r in reports], indent=2))
    else:
        for r in reports:
            print(f"{r.notebook} cell {r.cell}: {'FAILED' if r.failed else 'ok'}\n{checks_table(r.checks)}")
        if not reports:
            print("No %%hfjob cells found.")
    return 1 if any(r.failed for r in reports) else 0


def export_notebook(name: str, out_dir: str | None) -> int:
    from hfjobs_magic.cell.script import build_script

    path = Path(name)
    target = Path(out_dir) if out_dir else path.parent
    target.mkdir(parents=True, exist_ok=True)
    nb = nbio.read(path)
    cells = nbio.job_cells(nb)
    refused = 0
    for cell in cells:
        if TOKEN_LITERAL.search(f"{cell.line}\n{cell.body}"):
            print(f"cell {cell.index}: not exported, it holds a Hugging Face token literal; read the token "
                  "from the environment instead (HF_TOKEN is passed to jobs as a secret)", file=sys.stderr)
            refused += 1
            continue
        script = build_script(cell.body, cell_spec(path, cell), variables=None, notebook=str(path), first_line=2,
                              carrier=static_carrier(nb, cell))
        out = target / f"{path.stem}_cell{cell.index}.py"
        out.write_text(script.text, encoding="utf-8")
        print(f"wrote {out}  (run it with: uv run {out}, or: hf jobs uv run {out})")
    if not cells:
        print(f"No %%hfjob cells in {path}.", file=sys.stderr)
    return 1 if refused else 0


def run_notebook(name: str, *, sandbox: bool, yes: bool, output: str | None) -> int:
    """Execute a notebook unattended with nbclient; print a summary of its jobs."""
    path = Path(name)
    out = Path(output) if output else path.with_name(f"{path.stem}.out.ipynb")
    env = {"HFJOB_HEADLESS": "1", "JPY_SESSION_NAME": str(path)}
    if yes:
        env["HFJOB_YES"] = "1"
    if not sandbox:
        return _execute(path, out, env)
    from hfjobs_magic.sandbox import Sandbox

    with Sandbox() as sb:
        print(f"[hfjob] sandbox at {sb.endpoint} (user {sb.user}); nothing leaves this machine", flush=True)
        env |= {"HF_ENDPOINT": sb.endpoint, "HF_TOKEN": sb.token,
                "HFJOB_HISTORY": str(sb.data_dir / "history.jsonl")}
        return _execute(path, out, env)


def _execute(path: Path, out: Path, env: dict[str, str]) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from traitlets.config import Config

    nb = nbio.read(path)
    failure: str | None = None
    # Local sockets in a private folder, not TCP: nothing else on this machine can connect, and the
    # kernel has no "running over TCP without encryption" warning to print into the run's output.
    with tempfile.TemporaryDirectory(prefix="hfjob-kernel-") as sockets:
        ipc = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}})
        try:
            NotebookClient(nb, config=ipc, timeout=None, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent.resolve())}}).execute(
                env={**os.environ, **env})  # the kernel's environment; ours stays as it is
        except CellExecutionError as err:
            failure = failure_text(nb, err.ename, err.evalue)
        finally:
            nbformat.write(nb, str(out))
    print_summary(nb)
    print(f"[hfjob] executed notebook written to {out}")
    if failure:
        print(f"[hfjob] FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


def failure_text(nb: Any, ename: str, evalue: str | None, max_lines: int = FAILURE_LINES) -> str:
    """Which cell failed and the error's whole message (failing checks, the job's last log lines), bounded."""
    cell = next((i for i, c in enumerate(nb.cells) for o in c.get("outputs", []) if o.get("output_type") == "error"),
                None)
    lines = (evalue or "").strip().splitlines() or [""]
    if len(lines) > max_lines:
        lines = lines[:1] + [f"... ({len(lines) - max_lines} lines not shown)"] + lines[-(max_lines - 1):]
    where = f"cell {cell}: " if cell is not None else ""
    return hide_token_literals(f"{where}{ename}: " + "\n".join(lines))


def print_summary(nb: Any) -> None:
    from hfjobs_magic.money import usd
    from hfjobs_magic.views.bundle import duration, push_lines

    records = nbio.job_records(nb)
    if not records:
        print("[hfjob] no job ran")
        return
    rows = [("CELL", "JOB ID", "STAGE", "DURATION", "COST", "PUSHES")]
    for index, r in records:
        rows.append((str(index), r["id"], r["stage"], duration(r.get("duration_s")), usd(r.get("cost_usd")),
                     "; ".join(push_lines(r)) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

"""Execute notebook cells in a real kernel (nbclient), pointed at a sandbox."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from hfjobs_magic.jobs.record import MIME


@contextmanager
def environ(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def sandbox_env(sb: Any, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"HF_ENDPOINT": sb.endpoint, "HF_TOKEN": sb.token,
            "HFJOB_HISTORY": str(tmp_path / "history.jsonl"), **extra}


def execute(cells: list[str], env: dict[str, str], path: Path, allow_errors: bool = False,
            timeout: int = 240, replies: list[dict] | None = None) -> tuple[Any, CellExecutionError | None]:
    """Run `cells` in a fresh kernel; save the executed notebook to `path`; return it and any error.

    `replies`, when given, receives each cell's `execute_reply` (pagers answer in its payload).
    """
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    error = None
    with environ(**env):
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                                resources={"metadata": {"path": str(path.parent)}})
        if replies is not None:
            client.on_cell_executed = lambda **kw: replies.append(kw["execute_reply"])
        try:
            client.execute()
        except CellExecutionError as err:
            error = err
    nbformat.write(nb, str(path))
    return nb, error


def interrupt_when_logged(marker: str) -> str:
    """A cell that starts a thread sending this kernel SIGINT once its next job has logged `marker`.

    It waits for a condition (a new job in the history, then the line in its log), never for a duration.
    """
    return f"""import json, os, signal, threading, time
from huggingface_hub import HfApi

_history = os.environ["HFJOB_HISTORY"]
_seen = len(open(_history).readlines()) if os.path.exists(_history) else 0

def _interrupt_when_logged():
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        lines = open(_history).read().splitlines() if os.path.exists(_history) else []
        if len(lines) > _seen:
            entry = json.loads(lines[-1])
            logged = HfApi().fetch_job_logs(job_id=entry["id"], namespace=entry["namespace"])
            if any({marker!r} in line for line in logged):
                os.kill(os.getpid(), signal.SIGINT)
                return
        time.sleep(0.2)

threading.Thread(target=_interrupt_when_logged, daemon=True).start()"""


def text_of(cell: Any) -> str:
    """Everything a cell printed or raised, as text."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append("\n".join(out.get("traceback", [])))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def records(cell: Any) -> list[dict]:
    return [out["data"][MIME] for out in cell.get("outputs", []) if MIME in out.get("data", {})]


def final_record(cell: Any) -> dict:
    """The record as the notebook shows it: the first display, with its in-place updates applied."""
    found = records(cell)
    assert found, f"no job record in the cell output:\n{text_of(cell)}"
    return found[-1]

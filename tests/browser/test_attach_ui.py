"""The line magics in a real JupyterLab: a detached job, a kernel restart, then attach, ps and logs.

A user submits a job with `--detach`, restarts the kernel while it runs (its
history survives on disk), and gets the job back by a prefix of its id with
`%hfjob_attach`: the live view follows it from RUNNING to COMPLETED and the
record ends COMPLETED. `%hfjob_ps` lists it and `%hfjob_logs --tail 1` prints
its last line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hfjobs_magic.jobs.record import MIME as RECORD_MIME
from tests.browser.lab import UI_TIMEOUT_MS, LabNotebook

pytestmark = pytest.mark.browser

JOB_TIMEOUT_MS = 150_000  # a job installs its script's dependencies with uv before it runs
FIRST, LAST = "attach-test: first line", "attach-test: last line"


def job_cell(go_on: Path) -> str:
    """A job that prints its first line, then waits for the test to create `go_on` before its last one."""
    return (f"%%hfjob --yes --detach --allow-no-push --timeout 5m\n"
            f"import os, time\nprint({FIRST!r}, flush=True)\n"
            f"while not os.path.exists({str(go_on)!r}):\n    time.sleep(0.1)\nprint({LAST!r})")
_PANEL = "window.jupyterapp.shell.currentWidget"


def set_source(notebook: LabNotebook, index: int, source: str) -> None:
    """Replace cell `index`'s source in JupyterLab's model (what typing into it ends with)."""
    notebook.page.evaluate(f"([i, s]) => {_PANEL}.content.widgets[i].model.sharedModel.setSource(s)",
                           [index, source])


def records(notebook: LabNotebook, index: int) -> list[dict]:
    return [o["data"][RECORD_MIME] for o in notebook.model_outputs(index) if RECORD_MIME in o.get("data", {})]


def stream_text(notebook: LabNotebook, index: int) -> str:
    return "".join(o["text"] if isinstance(o["text"], str) else "".join(o["text"])
                   for o in notebook.model_outputs(index) if o.get("output_type") == "stream")


def restart_kernel(notebook: LabNotebook) -> None:
    """Restart the kernel as a user would (the command, then Restart in the dialog); wait until it is idle."""
    page = notebook.page
    page.evaluate(f"""() => {{
        window.__hfjobRestarted = false;
        {_PANEL}.sessionContext.statusChanged.connect((_, status) => {{
            if (status === 'restarting' || status === 'autorestarting' || status === 'starting')
                window.__hfjobRestarted = true;
        }});
        window.jupyterapp.commands.execute('notebook:restart-kernel');  // resolves only once the dialog closes
    }}""")
    page.locator(".jp-Dialog button.jp-mod-accept").click()
    page.locator(".jp-Dialog").wait_for(state="detached")
    page.wait_for_function("() => window.__hfjobRestarted === true")
    notebook.wait_ready()


def test_attach_ps_and_logs_after_a_kernel_restart(open_notebook, dialogs: list[str], tmp_path: Path):
    go_on = tmp_path / "attach-go-on"
    notebook = open_notebook("attach.ipynb", ["%load_ext hfjobs_magic", job_cell(go_on), "%load_ext hfjobs_magic",
                                              "%hfjob_attach JOB", "%hfjob_ps", "%hfjob_logs JOB --tail 1"])
    notebook.run(0)
    notebook.run(1)  # returns once the job is submitted: --detach follows nothing
    submitted = records(notebook, 1)
    assert submitted and submitted[-1]["id"], notebook.model_outputs(1)
    job_id = submitted[-1]["id"]
    assert submitted[-1]["stage"] not in ("COMPLETED", "ERROR", "CANCELED"), submitted[-1]
    assert notebook.errors(1) == []

    restart_kernel(notebook)
    set_source(notebook, 3, f"%hfjob_attach {job_id[:10]}")
    set_source(notebook, 5, f"%hfjob_logs {job_id} --tail 1")
    notebook.run(2)
    # a fresh kernel: its first execution, and the magic had to be loaded again
    assert notebook.page.evaluate(f"() => {_PANEL}.content.widgets[2].model.executionCount") == 1
    notebook.run(3)

    view = notebook.cell(3)
    # The job waits for go_on: the view opens on RUNNING however long the restart took.
    view.locator(".widget-html-content span", has_text="RUNNING").first.wait_for(timeout=JOB_TIMEOUT_MS)
    assert view.locator(".widget-html-content a", has_text=job_id).count() == 1
    go_on.touch()
    view.get_by_text("Job ended COMPLETED").wait_for(timeout=JOB_TIMEOUT_MS)
    log_pane = view.locator(".widget-html-content pre", has_text=LAST).first
    log_pane.wait_for(timeout=UI_TIMEOUT_MS)
    shown = log_pane.inner_text()
    assert shown.count(FIRST) == 1 and shown.count(LAST) == 1, shown
    assert shown.index(FIRST) < shown.index(LAST), shown
    assert view.locator(".widget-html-content span", has_text="COMPLETED").count() >= 1
    cancels = view.locator("button.jupyter-button", has_text="Cancel").all()  # "Cancel job", "Cancel: GPU idle"
    assert cancels and not any(button.is_visible() for button in cancels)
    record = notebook.wait_for_record(3, "COMPLETED")
    assert record["id"] == job_id
    assert records(notebook, 3)[-1]["stage"] == "COMPLETED"
    assert notebook.errors(3) == []

    notebook.run(4)
    rows = [line.split() for line in stream_text(notebook, 4).splitlines()]
    assert [job_id, "COMPLETED"] in [row[:2] for row in rows], rows

    notebook.run(5)
    assert notebook.errors(5) == []
    assert stream_text(notebook, 5).strip().splitlines() == [LAST]
    assert dialogs == []

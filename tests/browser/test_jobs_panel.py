"""The "HF Jobs" panel (issue 12, item 7) in a real JupyterLab, in Debian's Chromium.

Jobs are submitted to the sandbox directly through `HfApi`, with the labels the magic sets; the
panel gets them from the server extension, which uses the server's own login. The panel lists a
running and a finished job with their flavor, duration and cost; a click on the running job's row
opens its notebook at the cell that started it; Cancel ends the job CANCELED; Notebook 7 shows the
same panel (View > Left Sidebar). Every response and
websocket frame the browser receives is recorded: the sandbox token is in none of them.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi

from hfjobs_magic.cell.wrapping import cell_hash
from hfjobs_magic.jobs.history import Entry, History
from hfjobs_magic.sandbox import Sandbox
from tests.browser.lab import UI_TIMEOUT_MS, JupyterLab, write_notebook
from tests.polling import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("lab_extension")]

IMAGE = "python:3.12"
DEADLINE_S = 90.0
HOSTILE_NAME = "<img src=x onerror=window.__pwned=1>"
CELL_BODY = "import time\ntime.sleep(600)"
TAB = ".jp-SideBar .lm-TabBar-tab[data-id='hfjobs-panel']"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "jobs-panel.png"



class Received:
    """Every HTTP response and websocket frame the pages of a browser context receive, to search them afterwards."""

    def __init__(self, page: Any) -> None:
        self.responses: list[Any] = []
        self.frames: list[str] = []
        page.context.on("response", lambda response: self.responses.append(response))
        page.context.on("page", self.watch_sockets)
        self.watch_sockets(page)

    def watch_sockets(self, page: Any) -> None:
        page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: self.frames.append(str(frame))))

    def bodies(self) -> list[tuple[str, bytes]]:
        found = []
        for response in self.responses:
            try:
                found.append((response.url, response.body()))
            except Exception:  # redirects and evicted resources have no body to read
                continue
        # A kernel's history_reply replays what was typed in earlier tests' cells: one of them types the
        # token on purpose (the checklist test's "fix" step). That is the user's own input, not ours.
        return found + [("websocket", frame.encode()) for frame in self.frames if "history_reply" not in frame]


def row(page: Any, job_id: str) -> Any:
    return page.locator(f"#hfjobs-panel [data-job-id='{job_id}']")


def screenshot(page: Any) -> None:
    """The panel's heading and rows, for the README."""
    panel = page.locator("#hfjobs-panel").bounding_box()
    rows = page.locator("#hfjobs-panel .hfjobs-list").bounding_box()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), clip={"x": panel["x"], "y": panel["y"], "width": panel["width"],
                                                "height": rows["y"] + rows["height"] - panel["y"] + 8})


def test_panel_lists_opens_and_cancels_jobs_without_a_token_in_the_page(
        page: Any, jupyterlab: JupyterLab, sandbox: Sandbox, dialogs: list[str]) -> None:
    hub = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    user = hub.whoami()["name"]
    name = f"panel-{uuid.uuid4().hex[:6]}.ipynb"
    write_notebook(jupyterlab.root_dir / name, ["x = 1", "y = 2", f"%%hfjob --flavor cpu-upgrade\n{CELL_BODY}"])
    cell = cell_hash(CELL_BODY + "\n")
    finished = hub.run_job(image=IMAGE, command=["python", "-c", "print('done')"],
                           labels={"name": HOSTILE_NAME}, namespace=user)
    hub.wait_for_job(finished.id, namespace=user, poll_interval=0.1, timeout=DEADLINE_S)
    running = hub.run_job(image=IMAGE, command=["python", "-c", "import time; time.sleep(600)"],
                          flavor="cpu-upgrade", namespace=user,
                          labels={"hfjobs-magic": "1", "hfjob-cell": cell, "hfjob-notebook": name})
    History(Path(jupyterlab.log_path.parent / "history.jsonl")).append(Entry(
        id=running.id, namespace=user, url=running.url, flavor="cpu-upgrade", created=None,
        endpoint=sandbox.endpoint, notebook=str(jupyterlab.root_dir / name), cell=cell))
    try:
        wait_for(lambda: hub.inspect_job(job_id=running.id, namespace=user).status.stage == "RUNNING", "RUNNING")
        received = Received(page)
        page.goto(jupyterlab.page_url("lab", reset=""))
        page.locator(TAB).click()
        title = page.evaluate("() => [...window.jupyterapp.shell.widgets('left')]"
                              ".find(w => w.id === 'hfjobs-panel').title.label")
        assert title == "HF Jobs"
        assert page.evaluate("() => window.jupyterapp.commands.hasCommand('hfjobs-magic:run-as-job')")  # beside it

        # the running job first, then the finished one; each with flavor, duration and cost
        live = row(page, running.id)
        live.locator(".hfjobs-duration", has_text="m").wait_for()
        ids = page.locator("#hfjobs-panel [data-job-id]").evaluate_all("rows => rows.map(r => r.dataset.jobId)")
        assert ids.index(running.id) == 0 and finished.id in ids
        assert live.get_attribute("data-stage") == "RUNNING"
        assert live.locator(".hfjobs-flavor").inner_text() == "cpu-upgrade"
        assert live.locator(".hfjobs-cost").inner_text().endswith("($0.03/h)")
        assert live.locator(".hfjobs-where").inner_text() == f"{name} · cell 3"
        done = row(page, finished.id)
        assert done.get_attribute("data-stage") == "COMPLETED"
        assert done.locator(".hfjobs-cancel").count() == 0
        assert done.locator(".hfjobs-name").inner_text() == HOSTILE_NAME  # text, not markup
        assert page.evaluate("() => window.__pwned") is None
        screenshot(page)

        # a click on the row opens the notebook at the cell that started the job
        live.locator(".hfjobs-where").click()
        page.wait_for_function(
            """(name) => {
                const panel = window.jupyterapp.shell.currentWidget;
                return panel && panel.context && panel.context.path === name && panel.content.activeCellIndex === 2;
            }""", arg=name, timeout=UI_TIMEOUT_MS)

        # Cancel: the job ends CANCELED, and the panel says so
        live.locator("button.hfjobs-cancel").click()
        wait_for(lambda: hub.inspect_job(job_id=running.id, namespace=user).status.stage == "CANCELED", "CANCELED")
        page.locator(f"#hfjobs-panel [data-job-id='{running.id}'][data-stage='CANCELED']").wait_for()
        assert live.locator(".hfjobs-cancel").count() == 0
        assert page.locator("#hfjobs-panel .hfjobs-error").count() == 0

        # Notebook 7: the same panel, from View > Left Sidebar (in a tab of its own: the lab page stays)
        nb7 = page.context.new_page()
        nb7.goto(jupyterlab.page_url(f"notebooks/{name}"))
        nb7.get_by_role("menuitem", name="View").click()
        nb7.locator(".lm-Menu-item", has_text="Left Sidebar").hover()
        nb7.locator(".lm-Menu").last.locator(".lm-Menu-item", has_text="Show HF Jobs").click()
        nb7.locator(f"#hfjobs-panel [data-job-id='{running.id}'][data-stage='CANCELED']").wait_for()
        assert row(nb7, finished.id).get_attribute("data-stage") == "COMPLETED"

        bodies = received.bodies()
        listed = [body for url, body in bodies if "/hfjobs/jobs" in url and running.id.encode() in body]
        assert listed, "the panel's answers from the server extension were not recorded"
        leaks = [url for url, body in bodies if sandbox.token.encode() in body]
        assert not leaks, f"the sandbox token reached the browser in: {leaks}"
        assert dialogs == []
    finally:
        hub.cancel_job(job_id=running.id, namespace=user)

"""The JupyterLab extension (labextension/, issue 6) in a real JupyterLab and Notebook 7, in Debian's Chromium.

A `%%hfjob` cell that pushes to the sandbox leaves a job card that follows the
job live to COMPLETED, with its log tail and a verified push; saved, with the
kernel shut down and the page reloaded, the card is still there, and Notebook 7
shows it too; so does a notebook saved elsewhere (not trusted here). The cell
toolbar's "Run as HF Job" turns a plain cell, in a notebook that never loaded
the magic, into a job that completes, with the flags from the extension's settings.

`labextension/ci.sh` builds and installs the extension (`.ci/run` calls it).
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from huggingface_hub import HfApi

from hfjobs_magic.jobs.record import MIME, JobRecord, PushTarget
from hfjobs_magic.sandbox import Sandbox
from hfjobs_magic.views.bundle import to_bundle
from tests.browser.lab import UI_TIMEOUT_MS, JupyterLab, LabNotebook

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("lab_extension")]

PLUGIN_ID = "hfjobs-magic-lab:plugin"
COMMAND_ID = "hfjobs-magic:run-as-job"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "job-card.png"
JOB_TIMEOUT_MS = 150_000  # a job installs its script's dependencies with uv before it runs
HOSTILE_LINE = "<img src=x onerror=window.__pwned=1>"

# Every stage a card shows, in order, as the page saw it (cards re-render on each display update).
WATCH_STAGES = """() => {
    window.__hfjobStages = [];
    const note = () => document.querySelectorAll('.hfjob-card').forEach(card => {
        const seen = window.__hfjobStages;
        if (seen[seen.length - 1] !== card.dataset.stage) seen.push(card.dataset.stage);
    });
    new MutationObserver(note).observe(document.body, {childList: true, subtree: true});
}"""


def push_cell(repo_id: str) -> str:
    """A job cell's body that pushes a result to the sandbox and prints a line of markup."""
    return f"""from huggingface_hub import HfApi

api = HfApi()
api.create_repo("{repo_id}", repo_type="dataset", exist_ok=True)
api.upload_file(path_or_fileobj=b"accuracy: 0.93\\n", path_in_repo="results.yaml",
                repo_id="{repo_id}", repo_type="dataset", commit_message="results from the job")
print("{HOSTILE_LINE}")
print("pushed results.yaml")"""


def card(notebook: LabNotebook, cell: int, stage: str | None = None) -> Any:
    selector = f".hfjob-card[data-stage='{stage}']" if stage else ".hfjob-card"
    return notebook.cell(cell).locator(selector)


def saved_records(notebook: LabNotebook, cell: int) -> list[dict[str, Any]]:
    outputs = notebook.saved().cells[cell].outputs
    return [out["data"][MIME] for out in outputs if MIME in out.get("data", {})]


def put_settings(lab: JupyterLab, values: dict[str, Any]) -> None:
    """Save the extension's user settings through the server's settings API, as the settings editor does."""
    body = json.dumps({"raw": json.dumps(values)}).encode()
    request = urllib.request.Request(f"{lab.url}lab/api/settings/{PLUGIN_ID}", data=body, method="PUT",
                                     headers={"Authorization": f"token {lab.token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture
def extension_settings(jupyterlab: JupyterLab) -> Iterator[Any]:
    """`extension_settings(values)` sets the extension's settings for this test; they are reset after it."""
    yield lambda values: put_settings(jupyterlab, values)
    put_settings(jupyterlab, {})


def test_card_follows_the_job_and_survives_a_reload_without_kernel(
        open_notebook, sandbox: Sandbox, jupyterlab: JupyterLab, dialogs: list[str]):
    repo_id = f"{sandbox.user}/card-{uuid.uuid4().hex[:6]}"
    magic = f"%%hfjob --push {repo_id} --repo-type dataset --timeout 5m --yes"
    notebook = open_notebook("job-card.ipynb", ["%load_ext hfjobs_magic", f"{magic}\n{push_cell(repo_id)}"])
    page = notebook.page
    page.evaluate(WATCH_STAGES)
    notebook.run(0)
    notebook.run(1)

    # Live: the card appears with the job still on its way, then follows it to COMPLETED.
    done = card(notebook, 1, "COMPLETED")
    done.wait_for(timeout=JOB_TIMEOUT_MS)
    stages = page.evaluate("() => window.__hfjobStages")
    assert stages[-1] == "COMPLETED" and {"SCHEDULING", "RUNNING"} & set(stages[:-1]), stages
    assert done.locator(".hfjob-badge").inner_text() == "COMPLETED"
    assert done.locator(".hfjob-field-flavor").inner_text() == "cpu-basic"
    assert done.locator(".hfjob-push-line").inner_text().startswith(f"dataset {repo_id} ✓ verified")
    assert done.locator(".hfjob-commit-title").all_inner_texts() == ["results from the job"]
    job_link = done.locator("a.hfjob-job-link")
    assert job_link.get_attribute("href").startswith(f"{sandbox.endpoint}/jobs/{sandbox.user}/")

    # The log tail: collapsed, then opened; the job's markup is text, and nothing ran.
    logs = done.locator("details.hfjob-logs")
    assert logs.get_attribute("open") is None
    logs.locator("summary").click()
    tail = done.locator("pre.hfjob-log-tail").inner_text()
    assert "pushed results.yaml" in tail and HOSTILE_LINE in tail
    assert done.locator("img").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    box = done.bounding_box()  # for the README: the card with a little room around its border
    page.screenshot(path=str(_screenshot_path()), clip={
        "x": box["x"] - 8, "y": box["y"] - 8, "width": box["width"] + 16, "height": box["height"] + 16})

    # On the sandbox: the commit the card names landed.
    commits = HfApi(endpoint=sandbox.endpoint, token=sandbox.token).list_repo_commits(repo_id, repo_type="dataset")
    assert any(c.title == "results from the job" for c in commits)

    # Saved, kernel shut down, page reloaded: the card comes back from the saved record alone.
    notebook.save()
    record = saved_records(notebook, 1)[-1]
    assert record["stage"] == "COMPLETED" and record["push"][0]["verified"]
    notebook.shut_kernel_down()
    page.reload()
    reloaded = card(notebook, 1, "COMPLETED")
    reloaded.wait_for()
    assert reloaded.locator(".hfjob-push-ok").inner_text() == "✓ verified"
    assert reloaded.locator(".hfjob-commit-title").all_inner_texts() == ["results from the job"]

    # The same notebook in Notebook 7.
    page.goto(jupyterlab.page_url(f"notebooks/{notebook.name}"))
    in_notebook7 = page.locator(".jp-Cell").nth(1).locator(".hfjob-card[data-stage='COMPLETED']")
    in_notebook7.wait_for()
    assert in_notebook7.locator(".hfjob-push-line").inner_text().startswith(f"dataset {repo_id} ✓ verified")
    assert dialogs == []


def test_toolbar_button_runs_a_plain_cell_as_a_job(
        open_notebook, sandbox: Sandbox, extension_settings: Any, dialogs: list[str]):
    repo_id = f"{sandbox.user}/toolbar-{uuid.uuid4().hex[:6]}"
    extension_settings({"flavor": "cpu-basic", "timeout": "5m", "push": repo_id, "repoType": "dataset"})
    body = push_cell(repo_id)
    notebook = open_notebook("toolbar.ipynb", [body])  # never ran %load_ext hfjobs_magic
    page = notebook.page

    notebook.cell(0).locator(".jp-InputPrompt").click()
    notebook.cell(0).locator(f".jp-cell-toolbar jp-button[data-command='{COMMAND_ID}']").click()

    done = card(notebook, 0, "COMPLETED")
    done.wait_for(timeout=JOB_TIMEOUT_MS)
    source = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets[0].model.sharedModel.source")
    assert source == f"%%hfjob --flavor cpu-basic --timeout 5m --push {repo_id} --repo-type dataset --yes\n{body}"
    assert done.locator(".hfjob-push-line").inner_text().startswith(f"dataset {repo_id} ✓ verified")
    assert notebook.errors(0) == []

    # Again from the command palette (the toolbar now hides behind the long first line, as
    # JupyterLab does): the cell runs as a new job, without a second magic line.
    first_job = done.locator(".hfjob-job-link").inner_text()
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("Run Cell as HF Job")
    page.locator(f".lm-CommandPalette-item[data-command='{COMMAND_ID}']").click()
    page.wait_for_function(
        "([cell, old]) => { const link = cell.querySelector('.hfjob-card .hfjob-job-link');"
        " return !!link && link.textContent !== old; }",
        arg=[notebook.cell(0).element_handle(), first_job], timeout=UI_TIMEOUT_MS)
    card(notebook, 0, "COMPLETED").wait_for(timeout=JOB_TIMEOUT_MS)
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets[0].model.sharedModel.source"
                         ) == source
    assert dialogs == []


def test_card_in_an_untrusted_notebook_from_elsewhere(open_notebook, jupyterlab: JupyterLab):
    """A notebook saved on another machine is not trusted here: the card still renders (a safe
    renderer), in place of the record's text/html, and the job's markup stays text."""
    record = JobRecord(id="68f0c0ffee", namespace="alice", url="javascript:alert(1)", flavor="a10g-large",
                       stage="ERROR", message="<b>Job timed out</b>", usd_per_hour=1.5)
    record.push.append(PushTarget("alice/lost", "dataset", checked=True))
    record.add_lines([HOSTILE_LINE])
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("%%hfjob --push alice/lost", outputs=[
        nbformat.v4.new_output("display_data", data=to_bundle(record.as_json()))])]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, str(jupyterlab.root_dir / "from-elsewhere.ipynb"))

    opened = open_notebook("from-elsewhere.ipynb")
    shown = card(opened, 0, "ERROR")
    shown.wait_for()
    assert shown.locator(".hfjob-badge").inner_text() == "ERROR"
    assert shown.locator(".hfjob-message").inner_text() == "<b>Job timed out</b>"
    assert shown.locator(".hfjob-push-warn").inner_text() == "⚠ nothing was pushed there: the results are lost"
    assert shown.locator("a, b, img").count() == 0  # no link for javascript:, no markup from the job
    shown.locator("details.hfjob-logs summary").click()
    assert shown.locator("pre.hfjob-log-tail").inner_text() == HOSTILE_LINE
    assert opened.cell(0).locator(".jp-RenderedHTMLCommon").count() == 0


def _screenshot_path() -> Path:
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT

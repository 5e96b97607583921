"""The job's live view in a real JupyterLab: log lines shown as text (never as HTML), and Cancel."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi

from hfjobs_magic.sandbox import Sandbox
from tests.browser.lab import LabNotebook

pytestmark = pytest.mark.browser

JOB_TIMEOUT_MS = 150_000
QUIET = "--allow-no-push --timeout 5m --yes"
HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    '<img src=y onerror="window.__hfjobPwned = 1">',
    "<b>not bold</b> & <i>not italic</i>",
]


def test_log_pane_shows_job_output_as_text(open_notebook, dialogs: list[str]):
    prints = "\n".join(f"print({line!r})" for line in HOSTILE)
    notebook = open_notebook("live-log.ipynb", [
        "%load_ext hfjobs_magic",
        f"%%hfjob {QUIET}\nprint('first line of the job')\n{prints}\n"
        "print('\\x1b[31mred text\\x1b[0m')\nprint('last line of the job')",
    ])
    notebook.run(0)
    notebook.run(1)
    cell = notebook.cell(1)
    cell.get_by_text("Job ended COMPLETED").wait_for(timeout=JOB_TIMEOUT_MS)
    record = notebook.wait_for_record(1, "COMPLETED")
    assert all(line in record["log_tail"] for line in HOSTILE)

    log_pane = cell.locator(".widget-html-content pre").first
    shown = log_pane.inner_text()
    assert shown.index("first line of the job") < shown.index("last line of the job")
    for line in HOSTILE:
        assert line in shown, (line, shown)
    assert log_pane.locator("span", has_text="red text").first.get_attribute("style").count("color") == 1
    # The notebook's record (its text/html, or the lab extension's card) keeps the log tail, as text too.
    outputs = cell.locator(".jp-OutputArea")
    notebook.page.wait_for_function(
        "([area, lines]) => lines.every(line => area.textContent.split(line).length > 2)",
        arg=[outputs.element_handle(), HOSTILE])
    # Nothing the job printed became an element or ran.
    assert outputs.locator("img").count() == 0 and outputs.locator("script").count() == 0
    assert outputs.locator("b", has_text="not bold").count() == 0
    assert notebook.page.evaluate("() => window.__hfjobPwned") is None
    assert dialogs == []


def test_cancel_button_stops_the_job(open_notebook, sandbox: Sandbox):
    notebook = open_notebook("live-cancel.ipynb", [
        "%load_ext hfjobs_magic",
        f"%%hfjob {QUIET}\nimport time\nprint('working on it')\ntime.sleep(300)",
    ])
    notebook.run(0)
    notebook.run(1)
    cell = notebook.cell(1)
    cell.locator(".widget-html-content pre", has_text="working on it").wait_for(timeout=JOB_TIMEOUT_MS)
    job_id = _job_id(notebook)
    cell.locator("button.jupyter-button", has_text="Cancel job").click()
    cell.get_by_text("Job ended CANCELED").wait_for(timeout=JOB_TIMEOUT_MS)
    cancels = cell.locator("button.jupyter-button", has_text="Cancel").all()  # "Cancel job", "Cancel: GPU idle"
    assert cancels and not any(button.is_visible() for button in cancels)
    info = HfApi(endpoint=sandbox.endpoint, token=sandbox.token).inspect_job(job_id=job_id, namespace=sandbox.user)
    assert info.status.stage == "CANCELED"


def _job_id(notebook: LabNotebook) -> str:
    """The job's id, as the live view links it."""
    return notebook.cell(1).locator(".widget-html-content a").first.inner_text().strip()

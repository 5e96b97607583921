"""The `%%hfjob` widget in a real JupyterLab in Debian's Chromium, against the sandbox (issue 4).

A user whose token is read-only runs a job cell that pushes to the Hub: the
checklist says why, Submit stays disabled. They fix their setup, press
Re-check, Submit becomes enabled, and the job runs to COMPLETED in the live
view; the saved notebook keeps the job's record.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from hfjobs_magic.jobs.record import MIME
from hfjobs_magic.sandbox import Sandbox
from tests.browser.conftest import READ_TOKEN_KERNEL
from tests.browser.lab import LabNotebook

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "checklist.png"
JOB_TIMEOUT_MS = 150_000  # a job installs its script's dependencies with uv before it runs


def job_cell(repo_id: str) -> str:
    return f"""%%hfjob --push {repo_id} --repo-type dataset --timeout 5m
from huggingface_hub import HfApi

api = HfApi()
api.create_repo("{repo_id}", repo_type="dataset", exist_ok=True)
api.upload_file(path_or_fileobj=b"accuracy: 0.93\\n", path_in_repo="results.yaml",
                repo_id="{repo_id}", repo_type="dataset", commit_message="results from the job")
print("pushed results.yaml")"""


def button(notebook: LabNotebook, cell: int, label: str):
    return notebook.cell(cell).locator("button.jupyter-button", has_text=label)


def check_row(notebook: LabNotebook, cell: int, check_id: str):
    return notebook.cell(cell).locator(f"table.hfjob-checks tr[data-check='{check_id}']")


def statuses(notebook: LabNotebook, cell: int) -> dict[str, str]:
    rows = notebook.cell(cell).locator("table.hfjob-checks tr")
    return {row.get_attribute("data-check"): row.get_attribute("data-status") for row in rows.all()}


def widget_text(notebook: LabNotebook, cell: int) -> str:
    return notebook.cell(cell).locator(".jp-OutputArea").first.inner_text()


def test_failing_check_blocks_submit_until_fixed_and_rechecked(
        open_notebook, sandbox: Sandbox, dialogs: list[str]):
    repo_id = f"{sandbox.user}/eval-results-{uuid.uuid4().hex[:6]}"
    notebook = open_notebook("checklist.ipynb", [
        "%load_ext hfjobs_magic",
        job_cell(repo_id),
        f'import os\nos.environ["HF_TOKEN"] = "{sandbox.token}"  # the fix: a write token',
    ], kernel=READ_TOKEN_KERNEL)
    notebook.run(0)
    notebook.run(1)

    # The checklist: the token check fails (read-only token), Submit is disabled.
    submit, recheck = button(notebook, 1, "Submit"), button(notebook, 1, "Re-check")
    submit.wait_for()
    token_row = check_row(notebook, 1, "token")
    assert token_row.get_attribute("data-status") == "fail"
    assert "read-only" in token_row.inner_text() and "Fix:" in token_row.inner_text()
    assert statuses(notebook, 1)["token"] == "fail"
    assert submit.is_disabled()
    assert recheck.is_enabled()

    # The user fixes their setup, then asks for the checks again: Submit becomes enabled.
    notebook.run(2)
    recheck.click()
    notebook.page.wait_for_function("(el) => !el.disabled", arg=submit.element_handle())
    assert "fail" not in statuses(notebook, 1).values()
    assert token_row.get_attribute("data-status") == "ok" and "write token" in token_row.inner_text()
    assert "worst case $" in submit.inner_text()

    # Submit: the live view replaces the buttons and follows the job to its end.
    submit.click()
    outcome = notebook.cell(1).get_by_text("Job ended COMPLETED")
    outcome.wait_for(timeout=JOB_TIMEOUT_MS)
    view = widget_text(notebook, 1)
    assert "COMPLETED" in view and "pushed results.yaml" in view
    assert f"dataset {repo_id}: " in view and "commit(s), verified" in view
    assert not submit.is_visible() and not recheck.is_visible()
    notebook.cell(1).screenshot(path=str(_screenshot_path()))  # for the README: the cell and its views

    # On the sandbox: the job completed and its commit landed.
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    commits = api.list_repo_commits(repo_id, repo_type="dataset")
    assert any(c.title == "results from the job" for c in commits)

    # Saved with Ctrl+S, the notebook holds the job's record, and no token in any output.
    notebook.wait_for_record(1, "COMPLETED")
    notebook.save()
    saved = notebook.saved()
    records = [out["data"][MIME] for out in saved.cells[1].outputs if MIME in out.get("data", {})]
    assert records, saved.cells[1].outputs
    record = records[-1]
    assert record["stage"] == "COMPLETED" and record["namespace"] == sandbox.user
    assert record["push"][0]["repo_id"] == repo_id and record["push"][0]["verified"]
    outputs = json.dumps([cell.get("outputs", []) for cell in saved.cells])
    assert sandbox.token not in outputs and sandbox.read_token not in outputs
    assert dialogs == []


def _screenshot_path() -> Path:
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT

"""Fixtures for real-browser tests: JupyterLab started by the tests, Debian's Chromium, notebook driver.

Mark browser tests `@pytest.mark.browser` (or `pytestmark = pytest.mark.browser`);
they are skipped, with the reason, only when /usr/bin/chromium is missing.
`bash .ci/run` installs it, so in CI they run. Run them alone with
`.venv/bin/python -m pytest -m browser`.

Another suite can reuse these fixtures from its own conftest.py:

    from tests.browser.conftest import *  # noqa: F403

and pass extra server options by overriding `jupyterlab_args`.
On failure, a screenshot of the page and the server's log path are printed
(folder: $HFJOB_BROWSER_ARTIFACTS, else pytest's temporary folder).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hfjobs_magic.sandbox import Sandbox
from tests.browser.lab import (
    UI_TIMEOUT_MS,
    JupyterLab,
    LabNotebook,
    chromium_missing_reason,
    launch_chromium,
    start_jupyterlab,
)

READ_TOKEN_KERNEL = "python3-read-token"

__all__ = [
    "READ_TOKEN_KERNEL", "artifacts_dir", "chromium", "dialogs", "jupyterlab", "jupyterlab_args",
    "open_notebook", "page", "playwright", "pytest_collection_modifyitems", "pytest_runtest_makereport",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = chromium_missing_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the item, so the `page` fixture knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where failure screenshots go: $HFJOB_BROWSER_ARTIFACTS, else a folder in pytest's basetemp."""
    folder = Path(os.environ.get("HFJOB_BROWSER_ARTIFACTS") or tmp_path_factory.getbasetemp() / "browser-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def jupyterlab_args() -> tuple[str, ...]:
    """Extra `jupyter lab` options (`--Class.trait=value`); override this fixture to add some."""
    return ()


@pytest.fixture(scope="session")
def jupyterlab(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory,
               jupyterlab_args: tuple[str, ...]) -> Iterator[JupyterLab]:
    """One JupyterLab for the session, its kernels pointed at the session's sandbox.

    Kernels get HF_ENDPOINT, the sandbox's write token as HF_TOKEN, a job history in
    a temporary folder. The kernel spec `READ_TOKEN_KERNEL`
    is the same Python with the sandbox's read-only token instead. Notebooks are
    written under `jupyterlab.root_dir`. Stopped, kernels and all, at the end.
    """
    if reason := chromium_missing_reason():
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("jupyterlab")
    env = {
        "HF_ENDPOINT": sandbox.endpoint,
        "HF_TOKEN": sandbox.token,
        "HFJOB_HISTORY": str(base / "history.jsonl"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    lab = start_jupyterlab(base, env, extra_args=jupyterlab_args,
                           kernels={READ_TOKEN_KERNEL: {"HF_TOKEN": sandbox.read_token}})
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    """playwright's sync API, started once for the session."""
    if reason := chromium_missing_reason():
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    manager = sync_playwright().start()
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture(scope="session")
def chromium(playwright: Any) -> Iterator[Any]:
    """Debian's /usr/bin/chromium, headless, launched once for the session."""
    browser = launch_chromium(playwright)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def dialogs() -> list[str]:
    """Every JavaScript dialog (alert, confirm, prompt) the page opened during the test; all are dismissed."""
    return []


@pytest.fixture
def page(chromium: Any, jupyterlab: JupyterLab, dialogs: list[str], artifacts_dir: Path,
         request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page in a fresh browser context (no video); a screenshot is saved if the test fails."""
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    tab = context.new_page()

    def on_dialog(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    try:
        yield tab
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            shot = artifacts_dir / f"{request.node.name}.png"
            try:
                tab.screenshot(path=str(shot), full_page=True)
                print(f"screenshot of the failing page: {shot}")
            except Exception as err:  # a crashed page must not hide the test's own failure
                print(f"no screenshot ({err})")
            print(f"JupyterLab's log: {jupyterlab.log_path}")
        context.close()


@pytest.fixture
def open_notebook(page: Any, jupyterlab: JupyterLab) -> Callable[..., LabNotebook]:
    """`open_notebook(name, cells, kernel="python3")`: write the notebook, open it in the page, kernel idle."""

    def opener(name: str, cells: list[str] | None = None, kernel: str = "python3") -> LabNotebook:
        return LabNotebook.open(page, jupyterlab, name, cells, kernel)

    return opener


@pytest.fixture(scope="session")
def lab_extension() -> None:
    """The built lab extension, for the tests that look at its card, panel or command (CI must have it)."""
    if importlib.util.find_spec("hfjobs_magic_lab") is None:
        message = "hfjobs-magic-lab is not installed: run `bash labextension/ci.sh` (needs Node)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

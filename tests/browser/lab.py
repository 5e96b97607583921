"""Real-browser test kit: a JupyterLab server started by the tests, Debian's Chromium, and a notebook driver.

Everything here is plain Python (no fixtures) so other suites can reuse it; the
fixtures that wire it to the sandbox live in `tests/browser/conftest.py`.

- `start_jupyterlab(...)` starts `jupyter lab` on a free loopback port with a
  random token, an empty root folder, its own config/data/runtime/settings
  folders, and the environment you give it (the sandbox's endpoint and token);
  `JupyterLab.stop()` shuts its kernels down and kills what is left.
- `launch_chromium(playwright)` launches /usr/bin/chromium headless (never a
  browser downloaded by a test tool), no video.
- `LabNotebook` writes a notebook into the server's root, opens it in a page and
  runs its cells through JupyterLab's own commands, waiting on the page, never
  sleeping.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from hfjobs_magic.jobs.record import MIME as RECORD_MIME

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
STARTUP_TIMEOUT_S = 90.0
UI_TIMEOUT_MS = 60_000  # the default wait on the page: two shared cores can be slow
# JupyterLab settings that keep the page quiet and offline: no news or update toasts.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
    # every cell stays in the page (no virtual scrolling), so a locator finds any of them
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def chromium_missing_reason() -> str | None:
    """Why browser tests cannot run here, or None when Debian's Chromium is installed."""
    if CHROMIUM.exists():
        return None
    return (f"Debian's Chromium is not installed at {CHROMIUM} (`apt-get install -y chromium`; "
            "`bash .ci/run` installs it)")


# -- the server -------------------------------------------------------------------------------------


@dataclass
class JupyterLab:
    """A running `jupyter lab`: its base URL (ends with '/'), token, root folder and process."""

    url: str
    token: str
    root_dir: Path
    process: subprocess.Popen
    log_path: Path
    kernels: list[str] = field(default_factory=list)

    def page_url(self, path: str = "lab", **query: str) -> str:
        params = "&".join(f"{k}={v}" for k, v in {**query, "token": self.token}.items())
        return f"{self.url}{path.lstrip('/')}?{params}"

    def api(self, path: str, method: str = "GET") -> Any:
        """Call the server's REST API (e.g. `api/kernels`) and return the decoded JSON, if any."""
        request = urllib.request.Request(f"{self.url}{path.lstrip('/')}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Shut every kernel down, then the server; kill whatever it started that is still alive."""
        try:
            for kernel in self.api("api/kernels"):
                self.api(f"api/kernels/{kernel['id']}", method="DELETE")
        except (OSError, urllib.error.URLError, ValueError):
            pass
        _stop_tree(self.process)


def _stop_tree(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the server (it stops its kernels), then SIGKILL anything of its tree left."""
    import psutil  # a dependency of ipykernel

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def start_jupyterlab(
    base: Path,
    env: Mapping[str, str],
    *,
    extra_args: Iterable[str] = (),
    kernels: Mapping[str, Mapping[str, str]] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> JupyterLab:
    """Start `jupyter lab` under `base` (root folder `base/root`) and wait until it answers.

    `env` is added to this process's environment (kernels inherit it).
    `extra_args` are more `--Class.trait=value` options. `kernels` adds kernel
    specs, name -> extra environment, for kernels that must differ from the
    server's (a notebook picks one by its `kernelspec` metadata). `settings`
    are JupyterLab user settings files, relative path -> JSON, added to ours.
    """
    root, home = base / "root", base / "jupyter"
    for folder in (root, home / "config", home / "data", home / "runtime", home / "settings", home / "workspaces"):
        folder.mkdir(parents=True, exist_ok=True)
    for name, kernel_env in (kernels or {}).items():
        _write_kernelspec(home / "data" / "kernels" / name, name, kernel_env)
    for relative, values in {**LAB_SETTINGS, **(settings or {})}.items():
        target = home / "settings" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    token = secrets.token_hex(16)
    server_env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        **env,
    }
    command = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser", "--allow-root",
        f"--ServerApp.token={token}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.open_browser=False",
        "--ServerApp.disable_check_xsrf=False",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",  # lets the driver use JupyterLab's own commands
        "--LanguageServerManager.autodetect=False",
        *extra_args,
    ]
    log_path = base / "jupyterlab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=server_env, cwd=root, start_new_session=True)
    try:
        url = _wait_until_serving(process, home / "runtime", token, log_path)
    except BaseException:
        _stop_tree(process)
        raise
    return JupyterLab(url=url, token=token, root_dir=root, process=process, log_path=log_path,
                      kernels=sorted(kernels or {}))


def _write_kernelspec(folder: Path, name: str, env: Mapping[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({name})",
        "language": "python",
        "env": dict(env),
        "metadata": {"debugger": False},
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))


def _wait_until_serving(process: subprocess.Popen, runtime: Path, token: str, log_path: Path) -> str:
    """The server's base URL, once its runtime file exists and `api/status` answers."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    info_file = runtime / f"jpserver-{process.pid}.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        if info_file.exists():
            try:
                info = json.loads(info_file.read_text())
                url = f"http://127.0.0.1:{info['port']}{info.get('base_url', '/')}"
                request = urllib.request.Request(f"{url}api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return url
            except (OSError, ValueError, KeyError, urllib.error.URLError):
                pass
        time.sleep(0.2)  # polling a process that is starting: there is nothing to wait on
    raise RuntimeError(f"jupyter lab did not answer within {STARTUP_TIMEOUT_S:.0f}s:\n{log_path.read_text()[-4000:]}")


# -- the browser ---------------------------------------------------------------------------------------


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, driven by playwright (which gives it a fresh profile of its own)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                      timeout=UI_TIMEOUT_MS)


# -- notebooks in the page -------------------------------------------------------------------------------

_PANEL = "window.jupyterapp.shell.currentWidget"


def write_notebook(path: Path, cells: list[str], kernel: str = "python3") -> Path:
    """A notebook of code cells with `kernel` as its kernel spec (no kernel-picker dialog)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


class LabNotebook:
    """One notebook open in JupyterLab in one page: run cells, find their outputs, save."""

    def __init__(self, page: Any, lab: JupyterLab, name: str) -> None:
        self.page, self.lab, self.name = page, lab, name

    @property
    def path(self) -> Path:
        return self.lab.root_dir / self.name

    @classmethod
    def open(cls, page: Any, lab: JupyterLab, name: str, cells: list[str] | None = None,
             kernel: str = "python3") -> LabNotebook:
        """Write `cells` to `name` (when given), open it in JupyterLab and wait for an idle kernel."""
        if cells is not None:
            write_notebook(lab.root_dir / name, cells, kernel)
        page.goto(lab.page_url(f"lab/tree/{name}", reset=""))
        notebook = cls(page, lab, name)
        notebook.wait_ready()
        return notebook

    def wait_ready(self) -> None:
        """The notebook is the current tab and its kernel is idle."""
        self.page.wait_for_function(
            """(name) => {
                const app = window.jupyterapp;
                const panel = app && app.shell.currentWidget;
                if (!panel || !panel.context || panel.context.path !== name) return false;
                const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
                return !!kernel && kernel.status === 'idle' && panel.content.widgets.length > 0;
            }""",
            arg=self.name, timeout=UI_TIMEOUT_MS * 2)

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)

    def outputs(self, index: int) -> Any:
        return self.cell(index).locator(".jp-OutputArea-output")

    def run(self, index: int, timeout_ms: int = UI_TIMEOUT_MS * 2) -> None:
        """Run cell `index` as the user would (select it, Run) and wait until the kernel replied."""
        before = self.page.evaluate(f"(i) => {_PANEL}.content.widgets[i].model.executionCount", index)
        self.page.evaluate(
            f"""async (i) => {{
                const panel = {_PANEL};
                panel.content.activeCellIndex = i;
                panel.content.deselectAll();
                await window.jupyterapp.commands.execute('notebook:run-cell');
            }}""", index)
        self.page.wait_for_function(
            f"""([i, before]) => {{
                const count = {_PANEL}.content.widgets[i].model.executionCount;
                return count !== null && count !== before;
            }}""", arg=[index, before], timeout=timeout_ms)

    def model_outputs(self, index: int) -> list[dict]:
        """Cell `index`'s outputs as JupyterLab holds them (what Ctrl+S would write)."""
        return self.page.evaluate(f"(i) => {_PANEL}.content.widgets[i].model.outputs.toJSON()", index)

    def wait_for_record(self, index: int, stage: str, timeout_ms: int = UI_TIMEOUT_MS) -> dict:
        """Wait until cell `index` holds a job record (`application/vnd.hfjob+json`) at `stage`; return it.

        The widget and the record are updated by separate messages: wait on the one you check.
        """
        self.page.wait_for_function(
            f"""([i, mime, stage]) => {_PANEL}.content.widgets[i].model.outputs.toJSON()
                    .some(o => o.data && o.data[mime] && o.data[mime].stage === stage)""",
            arg=[index, RECORD_MIME, stage], timeout=timeout_ms)
        return [o["data"][RECORD_MIME] for o in self.model_outputs(index) if RECORD_MIME in o.get("data", {})][-1]

    def errors(self, index: int) -> list[str]:
        """The text of error outputs of cell `index`, if any."""
        return self.cell(index).locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                                        ).all_inner_texts()

    def save(self) -> None:
        """Save with Ctrl+S as a user would, and wait until JupyterLab says the file is clean."""
        self.cell(0).locator(".jp-InputPrompt").click()  # selects the cell in command mode
        self.page.keyboard.press("Control+s")
        self.page.wait_for_function(f"() => {_PANEL}.context.model.dirty === false", timeout=UI_TIMEOUT_MS)

    def shut_kernel_down(self) -> None:
        """Shut the notebook's kernel down through its session, and check the server no longer lists it."""
        kernel_id = self.page.evaluate(f"""async () => {{
            const session = {_PANEL}.sessionContext;
            const id = session.session.kernel.id;
            await session.shutdown();
            return id;
        }}""")
        assert kernel_id not in {k["id"] for k in self.lab.api("api/kernels")}

    def saved(self) -> Any:
        """The notebook as saved on disk."""
        return nbformat.read(str(self.path), as_version=4)

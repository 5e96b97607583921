"""The server extension behind the "HF Jobs" panel (hfjobs_magic/server), in a real Jupyter server.

The server runs with the sandbox's endpoint and token in its own environment, as a user's would;
jobs are real sandbox jobs submitted through `HfApi` with the labels the magic sets. The extension
is enabled by the config file the `hfjobs-magic` wheel installs (an editable install too).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from huggingface_hub import HfApi
from IPython.core.inputtransformer2 import TransformerManager

from hfjobs_magic.cell.wrapping import cell_hash
from hfjobs_magic.jobs.history import Entry, History
from hfjobs_magic.sandbox import Sandbox
from hfjobs_magic.server.listing import CellFinder, saved_cell_hash
from tests.browser.lab import JupyterLab, start_jupyterlab
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "python:3.12"
DEADLINE_S = 60.0
SLEEPER = ["python", "-c", "import time; print('working', flush=True); time.sleep(600)"]
CELL_BODY = "import time\ntime.sleep(600)"



def call(lab: JupyterLab, path: str, method: str = "GET", token: str | None = "lab") -> tuple[int, str]:
    """(status, body) of a request to the server, authenticated with its token unless `token` is None."""
    headers = {"Authorization": f"token {lab.token}"} if token else {}
    request = urllib.request.Request(f"{lab.url}{path}", method=method, headers=headers,
                                     data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def start_server(base: Path, env: dict[str, str]) -> JupyterLab:
    lab = start_jupyterlab(base, env)
    status, _ = call(lab, "hfjobs/jobs")
    if status == 404:
        lab.stop()
        pytest.fail("the hfjobs_magic.server extension is not enabled in this Jupyter: install hfjobs-magic "
                    "(`pip install -e .`), which puts etc/jupyter/jupyter_server_config.d/hfjobs_magic.json in place")
    return lab


@pytest.fixture(scope="module")
def lab(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    base = tmp_path_factory.mktemp("jobs-server")
    env = {"HF_ENDPOINT": sandbox.endpoint, "HF_TOKEN": sandbox.token,
           "HFJOB_HISTORY": str(base / "history.jsonl"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    server = start_server(base, env)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hub(sandbox: Sandbox) -> HfApi:
    return HfApi(endpoint=sandbox.endpoint, token=sandbox.token)


def jobs(lab: JupyterLab) -> list[dict[str, Any]]:
    status, body = call(lab, "hfjobs/jobs")
    assert status == 200, body
    return json.loads(body)["jobs"]


def test_lists_running_jobs_first_with_their_notebook_cell_and_cost(lab: JupyterLab, hub: HfApi,
                                                                   sandbox: Sandbox) -> None:
    user = hub.whoami()["name"]
    notebook = lab.root_dir / "sub" / f"panel-{uuid.uuid4().hex[:6]}.ipynb"
    nb = nbformat.v4.new_notebook()
    job_cell = nbformat.v4.new_code_cell(f"%%hfjob --flavor cpu-upgrade\n{CELL_BODY}")
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), job_cell]
    notebook.parent.mkdir(exist_ok=True)
    nbformat.write(nb, str(notebook))
    cell = cell_hash(CELL_BODY + "\n")
    finished = hub.run_job(image=IMAGE, command=["python", "-c", "print('done')"], namespace=user)
    hub.wait_for_job(finished.id, namespace=user, poll_interval=0.1, timeout=DEADLINE_S)
    labels = {"hfjobs-magic": "1", "hfjob-cell": cell, "hfjob-notebook": notebook.name}
    running = hub.run_job(image=IMAGE, command=SLEEPER, flavor="cpu-upgrade", labels=labels, namespace=user)
    History(Path(lab.log_path.parent / "history.jsonl")).append(Entry(
        id=running.id, namespace=user, url=running.url, flavor="cpu-upgrade", created=None,
        endpoint=sandbox.endpoint, notebook=str(notebook), cell=cell))
    try:
        wait_for(lambda: hub.inspect_job(job_id=running.id, namespace=user).status.stage == "RUNNING", "the job runs")
        rows = wait_for(lambda: (r := jobs(lab)) and r[0]["id"] == running.id and r[0]["duration_s"] and r,
                        "the running job on top, started")
        top = rows[0]
        assert top["stage"] == "RUNNING" and top["flavor"] == "cpu-upgrade"
        assert top["url"] == f"{sandbox.endpoint}/jobs/{user}/{running.id}"
        assert top["notebook"] == notebook.name and top["path"] == f"sub/{notebook.name}"
        assert top["cell"] == cell and top["cell_index"] == 1
        assert top["usd_per_hour"] == pytest.approx(0.03)
        assert top["cost_usd"] == pytest.approx(0.03 * top["duration_s"] / 3600, rel=1e-3)
        done = next(r for r in rows if r["id"] == finished.id)
        assert done["stage"] == "COMPLETED" and done["finished_at"] and done["notebook"] is None
        assert rows.index(done) > 0
    finally:
        hub.cancel_job(job_id=running.id, namespace=user)


def test_cancel_ends_the_job_canceled(lab: JupyterLab, hub: HfApi) -> None:
    user = hub.whoami()["name"]
    job = hub.run_job(image=IMAGE, command=SLEEPER, namespace=user)
    status, body = call(lab, f"hfjobs/jobs/{job.id}/cancel", method="POST")
    assert status == 200, body
    assert json.loads(body) == {"id": job.id, "requested": "cancel"}
    wait_for(lambda: hub.inspect_job(job_id=job.id, namespace=user).status.stage == "CANCELED", "CANCELED")
    assert next(r for r in jobs(lab) if r["id"] == job.id)["stage"] == "CANCELED"


def test_unknown_job_and_unauthenticated_requests(lab: JupyterLab) -> None:
    status, body = call(lab, "hfjobs/jobs/0123456789abcdef01234567/cancel", method="POST")
    assert status == 404
    assert json.loads(body) == {"error": "cannot cancel job 0123456789abcdef01234567: there is no job "
                                         "0123456789abcdef01234567 among your jobs"}
    assert call(lab, "hfjobs/jobs", token=None)[0] == 403
    assert call(lab, "hfjobs/jobs/0123456789abcdef01234567/cancel", method="POST", token=None)[0] == 403


def test_a_hub_failure_is_one_error_line(lab: JupyterLab, sandbox: Sandbox) -> None:
    jobs(lab)  # the login is known; now the Jobs API fails
    sandbox.faults.fail_next(20, status=503, path_prefix="/api/jobs")
    status, body = call(lab, "hfjobs/jobs")
    assert status == 502
    answer = json.loads(body)
    assert list(answer) == ["error"] and "\n" not in answer["error"]
    assert answer["error"].startswith("cannot list your jobs: the Hub answered HTTP 503")


def test_no_token_in_any_answer(lab: JupyterLab, hub: HfApi, sandbox: Sandbox) -> None:
    """Even a job whose name carries the token (a label anyone may set) comes back masked."""
    user = hub.whoami()["name"]
    job = hub.run_job(image=IMAGE, command=["true"], labels={"name": f"leak-{sandbox.token}"}, namespace=user)
    bodies = [call(lab, "hfjobs/jobs")[1], call(lab, f"hfjobs/jobs/{job.id}/cancel", method="POST")[1],
              call(lab, "hfjobs/jobs/nope/cancel", method="POST")[1]]
    assert all(sandbox.token not in body for body in bodies)
    row = next(r for r in json.loads(bodies[0])["jobs"] if r["id"] == job.id)
    assert row["name"].startswith("leak-") and sandbox.token not in row["name"]


def test_without_a_login_the_error_says_so(tmp_path: Path, sandbox: Sandbox) -> None:
    env = {"HF_ENDPOINT": sandbox.endpoint, "HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf-home")}
    server = start_server(tmp_path, env)
    try:
        status, body = call(server, "hfjobs/jobs")
    finally:
        server.stop()
    assert status == 502
    assert json.loads(body) == {"error": "cannot list your jobs: there is no Hugging Face token here. Run "
                                         "`hf auth login` or set HF_TOKEN."}


# -- without a server: how a job's cell is found ------------------------------------------------


@pytest.mark.parametrize("source", ["%%hfjob --yes\nprint(1)\nx = 2", "%%hfjob\nprint(1)\n", "\n%%hfjob\tx\ny",
                                    "%%hfjob", "%%hfjob --flavor t4-small\n\nz = 3\n\n"])
def test_saved_cell_hash_is_the_hash_the_magic_got(source: str) -> None:
    """IPython hands a cell magic the body after its first line: hash what it would hand us."""
    code = TransformerManager().transform_cell(source)
    body = eval(code.split("run_cell_magic(", 1)[1].rsplit(")", 1)[0])[2]  # the literal 3-tuple of arguments
    assert saved_cell_hash(source) == cell_hash(body)
    assert saved_cell_hash("print('%%hfjob')") is None
    assert saved_cell_hash("%%hfjobs\nx") is None


def test_a_notebook_outside_the_tree_is_not_offered(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "elsewhere.ipynb"
    root.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), str(outside))
    finder = CellFinder(root)
    for full_path in (str(outside), "../elsewhere.ipynb", str(root / ".." / "elsewhere.ipynb")):
        assert finder.locate(full_path, None, "abc") == {"notebook": "elsewhere.ipynb", "path": None,
                                                         "cell": "abc", "cell_index": None}
    assert finder.locate(None, "../elsewhere.ipynb", None)["path"] is None


def test_a_notebook_edited_between_refreshes_is_read_again(tmp_path: Path) -> None:
    """Hashes are kept between the panel's refreshes, never past a change to the notebook."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%%hfjob --yes\nx = 1")]
    path = tmp_path / "train.ipynb"
    nbformat.write(nb, str(path))
    cell = cell_hash("x = 1\n")
    assert CellFinder(tmp_path).locate(str(path), None, cell)["cell_index"] == 0
    nb.cells.insert(0, nbformat.v4.new_code_cell("import os  # a cell added above the job's"))
    nbformat.write(nb, str(path))
    assert CellFinder(tmp_path).locate(str(path), None, cell)["cell_index"] == 1


def test_without_history_the_label_finds_a_notebook_at_the_root(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("%%hfjob\nx"), nbformat.v4.new_code_cell("%%hfjob --yes\nx = 1")]
    nbformat.write(nb, str(tmp_path / "train.ipynb"))
    found = CellFinder(tmp_path).locate(None, "train.ipynb", cell_hash("x = 1\n"))
    assert found == {"notebook": "train.ipynb", "path": "train.ipynb", "cell": cell_hash("x = 1\n"), "cell_index": 1}
    assert CellFinder(tmp_path).locate(None, "other.ipynb", "abc")["path"] is None


def test_the_wheel_enables_the_server_extension() -> None:
    """The config file that turns it on, and the wheel mapping that installs it where Jupyter looks."""
    config = json.loads((ROOT / "jupyter-config/jupyter_server_config.d/hfjobs_magic.json").read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"hfjobs_magic.server": True}}}
    if sys.version_info >= (3, 11):
        import tomllib

        wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
        assert wheel["shared-data"] == {"jupyter-config/jupyter_server_config.d/hfjobs_magic.json":
                                        "etc/jupyter/jupyter_server_config.d/hfjobs_magic.json"}

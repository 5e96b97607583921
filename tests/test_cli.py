"""The command line: `hfjob run`, `hfjob export`, `hfjob sandbox`, and notebooks under nbconvert and papermill."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from hfjobs_magic.jobs.record import MIME
from hfjobs_magic.remote.hub import JOB_COMMAND, SCRIPT_ENV
from tests.nbrun import sandbox_env
from tests.served import served

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"


def job_outputs(path: Path) -> list[dict]:
    nb = nbformat.read(str(path), as_version=4)
    return [o["data"][MIME] for c in nb.cells for o in c.get("outputs", []) if MIME in o.get("data", {})]


def run(args: list[str], env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_quickstart_runs_against_its_own_sandbox(tmp_path):
    out = tmp_path / "quickstart.out.ipynb"
    result = run([str(BIN / "hfjob"), "run", str(QUICKSTART), "--sandbox", "--yes", "-o", str(out)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "COMPLETED" in result.stdout and "CELL" in result.stdout  # the summary table
    records = job_outputs(out)
    assert len(records) == 1 and records[0]["stage"] == "COMPLETED"
    assert records[0]["push"][0]["repo_id"] == "alice/quickstart-primes"
    assert records[0]["push"][0]["verified"] is True


def test_run_exits_non_zero_when_a_job_fails(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext hfjobs_magic"),
                nbformat.v4.new_code_cell("%%hfjob --allow-no-push --timeout 2m\nraise SystemExit(3)")]
    path = tmp_path / "fails.ipynb"
    nbformat.write(nb, str(path))
    result = run([str(BIN / "hfjob"), "run", str(path), "--sandbox", "--yes"])
    assert result.returncode == 1
    assert "HfJobFailed" in result.stderr and "ERROR" in result.stdout
    assert (tmp_path / "fails.out.ipynb").exists()


def _job_notebook(path: Path, repo: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext hfjobs_magic"),
        nbformat.v4.new_code_cell(
            f"%%hfjob --push {repo} --repo-type dataset --timeout 5m\n"
            "from huggingface_hub import HfApi\n"
            f"HfApi().create_repo('{repo}', repo_type='dataset', exist_ok=True)\n"
            f"HfApi().upload_file(path_or_fileobj=b'42', path_in_repo='answer.txt', repo_id='{repo}', "
            "repo_type='dataset')\n"
            "print('uploaded the answer')"),
    ]
    nbformat.write(nb, str(path))


def test_nbconvert_execute(sandbox, tmp_path, unique_name):
    path = tmp_path / "conv.ipynb"
    _job_notebook(path, f"alice/{unique_name}")
    env = sandbox_env(sandbox, tmp_path, HFJOB_YES="1")
    result = run([str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute", "--output", "done.ipynb",
                  str(path)], env)
    assert result.returncode == 0, result.stderr
    records = job_outputs(tmp_path / "done.ipynb")
    assert records[-1]["stage"] == "COMPLETED" and records[-1]["push"][0]["verified"]


def test_papermill(sandbox, tmp_path, unique_name):
    path = tmp_path / "pm.ipynb"
    _job_notebook(path, f"alice/{unique_name}")
    env = sandbox_env(sandbox, tmp_path, HFJOB_YES="1")
    result = run([str(BIN / "papermill"), str(path), str(tmp_path / "pm-out.ipynb"), "-k", "python3"], env)
    assert result.returncode == 0, result.stderr
    assert job_outputs(tmp_path / "pm-out.ipynb")[-1]["stage"] == "COMPLETED"


def test_export_round_trip_runs_with_uv_and_on_the_sandbox(sandbox, tmp_path, unique_name):
    path = tmp_path / "exp.ipynb"
    repo = f"alice/{unique_name}"
    _job_notebook(path, repo)
    result = run([str(BIN / "hfjob"), "export", str(path), "-o", str(tmp_path / "scripts")])
    assert result.returncode == 0, result.stderr
    (script,) = (tmp_path / "scripts").glob("*.py")
    text = script.read_text()
    assert "[tool.hf-jobs]" in text and sandbox.token not in text
    env = {"HF_ENDPOINT": sandbox.endpoint, "HF_TOKEN": sandbox.token, "UV_PYTHON_DOWNLOADS": "never"}
    local = run([str(BIN / "uv"), "run", "--no-project", str(script)], env)
    assert local.returncode == 0, local.stderr
    assert "uploaded the answer" in local.stdout
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    assert api.file_exists(repo, "answer.txt", repo_type="dataset")
    # On the sandbox, shipped inline as %%hfjob ships it.
    job = api.run_job(image="ghcr.io/astral-sh/uv:python3.12-bookworm", command=JOB_COMMAND,
                      env={SCRIPT_ENV: text}, secrets={"HF_TOKEN": sandbox.token}, namespace=sandbox.user)
    done = api.wait_for_job(job.id, namespace=sandbox.user, timeout=120)
    logs = "\n".join(api.fetch_job_logs(job_id=job.id, namespace=sandbox.user))
    assert done.status.stage == "COMPLETED", logs
    assert "uploaded the answer" in logs


def test_sandbox_command_prints_lines_a_shell_exports_and_stops_cleanly(tmp_path):
    with served("--port", "0", "--data-dir", str(tmp_path / "d"), stderr_path=tmp_path / "err") as sb:
        assert re.fullmatch(r"HF_ENDPOINT=http://127\.0\.0\.1:\d+", sb.lines[0])  # nothing else on the line
        assert re.fullmatch(r"HF_TOKEN=hf_[A-Za-z0-9]{34}", sb.lines[1])
        assert sb.lines[0] == f"HF_ENDPOINT={sb.endpoint}" and sb.lines[1] == f"HF_TOKEN={sb.token}"
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        who = api.whoami()
        assert who["name"] == "alice" and who["auth"]["accessToken"]["role"] == "write"
        read = HfApi(endpoint=sb.endpoint, token=sb.comment("read-only token")).whoami()
        assert read["name"] == "alice" and read["auth"]["accessToken"]["role"] == "read"
        assert HfApi(endpoint=sb.endpoint, token=sb.comment("second user")).whoami()["name"] == "bob"
        assert sb.stop() == 0
    assert "Stopping the sandbox" in (tmp_path / "err").read_text()


def test_sandbox_command_honours_every_flag(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    flags = ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path / "d"), "--user", "carol",
             "--token", "hf_CarolWrites", "--read-token", "hf_CarolReads", "--org", "lab-one", "--org", "lab-two",
             "--read-org", "giant"]
    with served(*flags, stderr_path=tmp_path / "err") as sb:
        assert sb.exported == {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": "hf_CarolWrites"}
        assert sb.comment("read-only token") == "hf_CarolReads"
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        who = api.whoami()
        assert who["name"] == "carol"
        assert {o["name"]: o["roleInOrg"] for o in who["orgs"]} == {"lab-one": "write", "lab-two": "write",
                                                                    "giant": "read"}
        assert HfApi(endpoint=sb.endpoint, token="hf_CarolReads").whoami()["auth"]["accessToken"]["role"] == "read"
        api.create_repo("lab-two/kept", repo_type="dataset")
        with pytest.raises(HfHubHTTPError) as err:
            api.create_repo("giant/refused", repo_type="dataset")
        assert err.value.response.status_code == 403
    with served("--data-dir", str(tmp_path / "d"), stderr_path=tmp_path / "err") as again:  # same data dir
        api = HfApi(endpoint=again.endpoint, token=again.token)
        assert api.repo_exists("lab-two/kept", repo_type="dataset")  # the data dir's repos are kept...
        assert api.whoami()["name"] == "alice" and again.token != "hf_CarolWrites"  # ...flags are not


def test_sandbox_command_on_a_taken_port_says_so(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run([str(BIN / "hfjob"), "sandbox", "--port", str(port), "--data-dir", str(tmp_path / "d")])
    assert result.returncode == 2 and result.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_run_reports_a_missing_notebook_clearly(tmp_path):
    result = run([str(BIN / "hfjob"), "run", str(tmp_path / "nope.ipynb")])
    assert result.returncode == 2
    assert "nope.ipynb" in result.stderr and "Traceback" not in result.stderr


def test_run_of_a_notebook_without_jobs_says_so(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(1 + 1)")]
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, str(path))
    result = subprocess.run([str(BIN / "hfjob"), "run", str(path)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no job ran" in result.stdout
    assert "WARNING" not in result.stderr and "without encryption" not in result.stderr  # no kernel noise
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.ipynb", "plain.out.ipynb"]  # no socket files left
    assert nbformat.read(str(tmp_path / "plain.out.ipynb"), as_version=4).cells[0].outputs[0]["text"] == "2\n"


def test_export_refuses_a_cell_holding_a_token_literal(tmp_path):
    token = "hf_TypedByMistake0123456789abcdefghijkl"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"%%hfjob --allow-no-push\nHF = '{token}'\nprint(1)"),
                nbformat.v4.new_code_cell("%%hfjob --allow-no-push\nprint(2)")]
    path = tmp_path / "tok.ipynb"
    nbformat.write(nb, str(path))
    result = run([str(BIN / "hfjob"), "export", str(path), "-o", str(tmp_path / "out")])
    assert result.returncode == 1 and "token literal" in result.stderr and token not in result.stderr
    assert [p.name for p in (tmp_path / "out").glob("*.py")] == ["tok_cell1.py"]


@pytest.mark.parametrize("content", ["not json\n", "{}", "[1]"])
def test_check_and_export_of_a_file_that_is_no_notebook_say_so(tmp_path, capsys, content):
    from hfjobs_magic.cli import main

    path = tmp_path / "broken.ipynb"
    path.write_text(content)
    for command in ("check", "export"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{path} is not a Jupyter notebook" in err and "Traceback" not in err


def test_run_prints_which_cell_failed_and_the_whole_reason():
    from hfjobs_magic.commands import failure_text

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("%%hfjob ...")]
    nb.cells[1].outputs = [nbformat.v4.new_output("error", ename="HfJobFailed", evalue="...", traceback=[])]
    tail = "\n".join(f"log line {i}" for i in range(100)) + "\nValueError: boom"
    text = failure_text(nb, "HfJobFailed", f"Job j1 ended ERROR: exit code 1\n--- last log lines ---\n{tail}")
    lines = text.splitlines()
    assert lines[0] == "cell 1: HfJobFailed: Job j1 ended ERROR: exit code 1"
    assert lines[-1] == "ValueError: boom" and "lines not shown" in text and len(lines) <= 31

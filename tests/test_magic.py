"""`%%hfjob` end to end: notebooks executed by nbclient in a real kernel against a real sandbox."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from huggingface_hub import HfApi
from IPython.core.error import UsageError

from hfjobs_magic.errors import HfJobHubError
from hfjobs_magic.sandbox import Sandbox
from tests.nbrun import execute, final_record, interrupt_when_logged, records, sandbox_env, text_of

LOAD = "%load_ext hfjobs_magic"
QUIET = "--allow-no-push --timeout 5m --yes"


def test_job_output_and_completed_record(sandbox, tmp_path):
    cell = f"%%hfjob {QUIET}\nimport sys\nprint('hello from the job', sys.version_info[0])"
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    out = text_of(nb.cells[1])
    assert "hello from the job 3" in out
    record = final_record(nb.cells[1])
    assert record["stage"] == "COMPLETED"
    assert record["namespace"] == sandbox.user and record["flavor"] == "cpu-basic"
    assert any("hello from the job" in line for line in record["log_tail"])
    assert {"id", "url", "created_at", "finished_at", "push", "log_tail"} <= set(record)
    history = (tmp_path / "history.jsonl").read_text().splitlines()
    assert sum(record["id"] in line for line in history) == 1


def test_failing_job_raises_with_its_traceback(sandbox, tmp_path):
    cell = f"%%hfjob {QUIET}\nprint('about to fail')\nraise ValueError('boom in the job')"
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "HfJobFailed"
    assert "ValueError: boom in the job" in err.evalue
    assert final_record(nb.cells[1])["stage"] == "ERROR"


def test_dry_run_shows_the_script_and_submits_nothing(sandbox, tmp_path):
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    before = len(list(api.list_jobs(namespace=sandbox.user)))
    cell = "%%hfjob --dry-run --allow-no-push\nimport json\nprint(json.dumps({'a': 1}))"
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    out = text_of(nb.cells[1])
    assert "# /// script" in out and "print(json.dumps({'a': 1}))" in out
    assert not records(nb.cells[1])
    assert len(list(api.list_jobs(namespace=sandbox.user))) == before


def test_detach_returns_at_once(sandbox, tmp_path):
    cell = f"%%hfjob {QUIET} --detach\nimport time\ntime.sleep(300)"  # still running when the cell returns
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    record = final_record(nb.cells[1])
    assert record["stage"] in ("SCHEDULING", "RUNNING")
    HfApi(endpoint=sandbox.endpoint, token=sandbox.token).cancel_job(job_id=record["id"], namespace=sandbox.user)


def test_vars_and_config_defaults(sandbox, tmp_path):
    cells = [
        LOAD,
        "%config HFJobMagics.flavor = 'cpu-upgrade'",
        "params = {'lr': 0.001, 'names': ['a', 'b']}\nepochs = 3",
        f"%%hfjob {QUIET} --vars params,epochs\nprint('got', params['lr'], params['names'], epochs)",
    ]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    assert "got 0.001 ['a', 'b'] 3" in text_of(nb.cells[3])
    assert final_record(nb.cells[3])["flavor"] == "cpu-upgrade"


def test_attach_in_a_fresh_kernel_and_cancel(sandbox, tmp_path):
    env = sandbox_env(sandbox, tmp_path)
    first, err = execute([LOAD, f"%%hfjob {QUIET}\nprint('done once')"], env, tmp_path / "a.ipynb")
    assert err is None, err
    job_id = final_record(first.cells[1])["id"]
    nb, err = execute([LOAD, f"%hfjob_attach {job_id[:10]}"], env, tmp_path / "b.ipynb")
    assert err is None, err
    assert final_record(nb.cells[1])["stage"] == "COMPLETED"
    assert "done once" in text_of(nb.cells[1])

    slow, err = execute([LOAD, f"%%hfjob {QUIET} --detach\nimport time\ntime.sleep(60)"], env, tmp_path / "c.ipynb")
    slow_id = final_record(slow.cells[1])["id"]
    nb, err = execute([LOAD, f"%hfjob_cancel {slow_id}", "%hfjob_ps"], env, tmp_path / "d.ipynb")
    assert err is None, err
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    assert api.wait_for_job(slow_id, namespace=sandbox.user, timeout=30).status.stage == "CANCELED"
    assert slow_id in text_of(nb.cells[2])


def test_bad_flags_raise_usage_error_and_submit_nothing(sandbox, tmp_path):
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    before = len(list(api.list_jobs(namespace=sandbox.user)))
    nb, _ = execute([LOAD, "%%hfjob --flavour a10g-large\nprint(1)", "%%hfjob --timeout soon\nprint(1)"],
                    sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb", allow_errors=True)
    assert "UsageError" in text_of(nb.cells[1]) and "did you mean --flavor" in text_of(nb.cells[1])
    assert "UsageError" in text_of(nb.cells[2]) and "1.5h" in text_of(nb.cells[2])
    assert len(list(api.list_jobs(namespace=sandbox.user))) == before


def test_unattended_without_consent_raises_not_confirmed(sandbox, tmp_path):
    nb, err = execute([LOAD, "%%hfjob --allow-no-push\nprint(1)"], sandbox_env(sandbox, tmp_path),
                      tmp_path / "n.ipynb")
    assert err is not None and err.ename == "HfJobNotConfirmed"
    assert "--yes" in err.evalue


def test_dropped_log_stream_loses_and_repeats_nothing(fresh_sandbox, tmp_path):
    fresh_sandbox.faults.drop_logs_after(7)
    cell = (f"%%hfjob {QUIET}\nimport time\nfor i in range(30):\n"
            "    print(f'line-{i}', flush=True)\n    time.sleep(0.02)")
    nb, err = execute([LOAD, cell], sandbox_env(fresh_sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    seen = [line for line in text_of(nb.cells[1]).splitlines() if line.startswith("line-")]
    assert seen == [f"line-{i}" for i in range(30)]
    assert fresh_sandbox.faults.injected >= 1


def test_canary_token_never_leaks(tmp_path):
    canary = "hf_CanaryTokenDoNotLeak0123456789abcdefXYZ"
    with Sandbox(token=canary) as sb:
        cell = (f"%%hfjob {QUIET}\nimport os\ntoken = os.environ['HF_TOKEN']\n"
                "print('whole', token)\nprint('piece', token[3:15])")
        path = tmp_path / "canary.ipynb"
        nb, err = execute([LOAD, cell], sandbox_env(sb, tmp_path), path)
        assert err is None, err
        assert "whole ***" in text_of(nb.cells[1])
        exported = tmp_path / "exported"
        subprocess.run([sys.executable, "-m", "hfjobs_magic.cli", "export", str(path), "-o", str(exported)],
                       check=True, capture_output=True)
        texts = [path.read_text(), (tmp_path / "history.jsonl").read_text()]
        texts += [p.read_text() for p in exported.glob("*.py")]
        for text in texts:
            assert canary not in text and canary[3:15] not in text
        assert json.dumps(final_record(nb.cells[1])).count("***") >= 1


def test_a_million_log_lines_keep_the_saved_notebook_small(sandbox, tmp_path):
    cell = f"%%hfjob {QUIET}\nfor i in range(1_000_000):\n    print('progress line', i)"
    path = tmp_path / "big.ipynb"
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), path)
    assert err is None, err
    assert path.stat().st_size < 1_000_000
    record = final_record(nb.cells[1])
    assert record["log_lines"] >= 1_000_000 and "progress line 999999" in record["log_tail"]
    assert "progress line 999999" in text_of(nb.cells[1])


def test_logs_completion_and_a_light_load_ext(sandbox, tmp_path):
    cells = [
        "import sys\nbefore = set(sys.modules)\n%load_ext hfjobs_magic\n"
        "heavy = {'huggingface_hub.hf_api', 'ipywidgets'} & set(sys.modules)\nprint('heavy', sorted(heavy))",
        f"%%hfjob {QUIET}\nprint('line for the logs')",
        "import json, os\njob = json.loads(open(os.environ['HFJOB_HISTORY']).read().splitlines()[-1])['id']",
        "%hfjob_logs $job --tail 3",
        "from IPython.core.completer import provisionalcompleter\n"
        "with provisionalcompleter():\n"
        "    found = [c.text for c in get_ipython().Completer.completions('%%hfjob --flav', 14)]\n"
        "    flavors = [c.text for c in get_ipython().Completer.completions('%%hfjob --flavor a10', 20)]\n"
        "print('flags', found)\nprint('flavors', flavors)",
    ]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    assert "heavy []" in text_of(nb.cells[0])
    assert "line for the logs" in text_of(nb.cells[3])
    completions = text_of(nb.cells[4])
    assert "--flavor" in completions and "a10g-large" in completions


WARM_DONE = (
    "import gc, sys, threading, time\n"
    "deadline = time.monotonic() + 60\n"
    "while any(t.name == 'hfjob-warm-up' for t in threading.enumerate()) and time.monotonic() < deadline:\n"
    "    time.sleep(0.05)\n"
    "client = get_ipython().magics_manager.registry['HFJobMagics'].client()\n"
    "print('fetched', client.known_hardware() is not None, client._whoami is not None)\n"
    "needed = {'huggingface_hub.hf_api', 'hfjobs_magic.checks', 'hfjobs_magic.jobs.runner'}\n"
    "print('imported', needed <= set(sys.modules))\n"
    "print('gc on', gc.isenabled())"
)


@pytest.mark.parametrize("user_paused_gc", [False, True])
def test_the_warm_up_fetches_and_imports_what_a_job_cell_needs_and_leaves_gc_as_it_was(sandbox, tmp_path,
                                                                                       user_paused_gc):
    """After the %load_ext cell, whoami, the hardware list and the job cell's imports arrive on their own; the
    garbage collector, paused while they import, is on again afterwards, unless the user had paused it."""
    load = ("import gc\ngc.disable()\n" if user_paused_gc else "") + LOAD
    nb, err = execute([load, WARM_DONE], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    out = text_of(nb.cells[1])
    assert "fetched True True" in out and "imported True" in out
    assert f"gc on {not user_paused_gc}" in out


def test_interrupting_an_unattended_wait_leaves_the_job_running(sandbox, tmp_path):
    cells = [
        LOAD,
        interrupt_when_logged("started-and-left-running"),
        f"%%hfjob {QUIET}\nimport time\nprint('started-and-left-running', flush=True)\ntime.sleep(120)",
    ]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "KeyboardInterrupt"
    out = text_of(nb.cells[2])
    assert "stopped following" in out and "%hfjob_attach" in out and "%hfjob_cancel" in out
    job_id = final_record(nb.cells[2])["id"]
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    assert api.inspect_job(job_id=job_id, namespace=sandbox.user).status.stage == "RUNNING"
    api.cancel_job(job_id=job_id, namespace=sandbox.user)


def test_repos_the_cell_pushes_to_are_verified_too(sandbox, tmp_path, unique_name):
    repo = f"alice/{unique_name}"
    cell = (f"%%hfjob --yes --timeout 5m\nfrom huggingface_hub import HfApi\n"
            f"HfApi().create_repo('{repo}', repo_type='dataset', exist_ok=True)\n"
            f"HfApi().upload_file(path_or_fileobj=b'1', path_in_repo='x.txt', repo_id='{repo}', repo_type='dataset')")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    (target,) = final_record(nb.cells[1])["push"]
    assert (target["repo_id"], target["repo_type"], target["declared"]) == (repo, "dataset", False)
    assert target["verified"] and len(target["commits"]) == 1


def test_a_token_typed_into_a_flag_or_the_cell_is_never_echoed(sandbox, tmp_path):
    token = "hf_TypedByMistake0123456789abcdefghijkl"
    cells = [
        LOAD,
        f"%%hfjob --dry-run --allow-no-push\nfrom huggingface_hub import HfApi\napi = HfApi(token='{token}')",
        f"%%hfjob --yes --allow-no-push --secrets MYKEY={token}\nprint(1)",
        f"%%hfjob --yes --allow-no-push --env KEY={token}\nprint(1)",
        f"%%hfjob --yes --allow-no-push --flavor {token}\nprint(1)",
        f"%%hfjob --yes --allow-no-push --timeout {token}\nprint(1)",
    ]
    nb, _ = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb", allow_errors=True)
    for cell in nb.cells[1:]:
        shown = json.dumps(cell.outputs)
        assert token not in shown and token[3:15] not in shown, shown
    assert "HfJobCheckError" in text_of(nb.cells[2]) and "secrets" in text_of(nb.cells[2])
    assert "UsageError" in text_of(nb.cells[5])


# -- in-process: the magic in a plain IPython shell (headless), for fast error-path tests -----------------

@pytest.fixture
def shell(sandbox, tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    for key, value in sandbox_env(sandbox, tmp_path, HFJOB_HEADLESS="1").items():
        monkeypatch.setenv(key, value)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hfjobs_magic")
    return ip


def raised(shell, code: str) -> BaseException | None:
    return shell.run_cell(code).error_in_exec


@pytest.mark.parametrize("line", ["hfjob_logs nosuchjob", "hfjob_cancel nosuchjob", "hfjob_attach nosuchjob"])
def test_an_unknown_job_id_is_one_clear_line(shell, line):
    err = raised(shell, f"%{line}")
    assert isinstance(err, HfJobHubError), err
    assert "there is no job nosuchjob in alice" in str(err) and "%hfjob_ps" in str(err)
    assert err._render_traceback_() == [f"HfJobHubError: {err}"]  # IPython shows no frame of ours


@pytest.mark.parametrize("job", ["../../etc/passwd", "'a b'", "\ud800"])
def test_what_is_not_a_job_id_is_a_usage_error_before_any_request(shell, job):
    err = raised(shell, f"%hfjob_logs {job}")
    assert isinstance(err, UsageError) and "is not a job id" in str(err), err


def test_a_job_url_as_the_views_show_it_names_the_job(shell, sandbox, capsys):
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    job = api.run_job(image="python:3.12", command=["python", "-c", "print('from the url')"], namespace=sandbox.user)
    api.wait_for_job(job.id, namespace=sandbox.user, poll_interval=0.1, timeout=60)
    assert raised(shell, f"%hfjob_logs {job.url}") is None  # e.g. http://127.0.0.1:PORT/jobs/alice/ID
    assert "from the url" in capsys.readouterr().out


def test_line_magics_without_a_token_or_a_hub_say_what_to_do(shell, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    err = raised(shell, "%hfjob_ps")
    assert isinstance(err, HfJobHubError) and "hf auth login" in str(err)
    monkeypatch.setenv("HF_TOKEN", "hf_sandbox_not_a_token_at_all")
    err = raised(shell, "%hfjob_logs abc")
    assert isinstance(err, HfJobHubError) and "HTTP 401" in str(err) and "not_a_token" not in str(err)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    err = raised(shell, "%hfjob_ps")
    assert isinstance(err, HfJobHubError) and "could not reach the Hub at http://127.0.0.1:9" in str(err)


def test_an_unreachable_hub_at_submission_is_one_clear_line(shell, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the checks only warn; the submission fails
    err = raised(shell, "%%hfjob --allow-no-push --timeout 1m --yes\nprint(1)")
    assert isinstance(err, HfJobHubError), err
    assert str(err).startswith("the job was not submitted: could not reach the Hub")


def test_the_help_shows_the_examples_and_every_flag(shell, capsys):
    from hfjobs_magic.cell.spec import known_flags

    assert shell.run_cell("%%hfjob?").success
    out = capsys.readouterr().out
    assert "Examples::" in out and "%%hfjob --dry-run" in out
    doc = shell.magics_manager.magics["cell"]["hfjob"].__doc__  # what help() and editors read
    assert all(flag in out and flag in doc for flag in known_flags())
    assert "cancel the job once its GPU has been idle (under 5 %) this" in doc  # argparse's %% unescaped


def test_every_check_numbers_lines_as_the_notebook_shows_them(shell, capsys):
    assert shell.run_cell("%%hfjob --dry-run --allow-no-push\n%pip install numpy\nprint(undefined_var)").success
    out = capsys.readouterr().out
    assert "line 2: `%pip install numpy`" in out and "undefined_var (line 3)" in out


def test_dry_run_with_outputs_shows_the_cell_not_the_whole_wrapper(sandbox, tmp_path):
    cell = "%%hfjob --dry-run --outputs out --push alice/dry-run-target\nopen('out/a.txt', 'w').write('x')"
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    out = text_of(nb.cells[1])
    assert "open('out/a.txt', 'w').write('x')" in out and "lines of hfjobs_magic/cell/persist.py" in out
    assert out.count("\n") < 120

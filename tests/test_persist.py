"""--outputs + --push to the Hub: the wrapper's pieces, then whole jobs through the magic in a real kernel.

The end-to-end cases run on the sandbox: a crash, a timeout and a cancel still push the folder;
--sync-every pushes during the run; a refused commit fails the job naming the target; a
declared target that received nothing fails an unattended run unless --allow-no-push.
"""

from __future__ import annotations

import hashlib
import io
import random
import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from hfjobs_magic.cell import persist, wrapping
from hfjobs_magic.cell.names import undefined_names
from hfjobs_magic.cell.script import build_script
from hfjobs_magic.cell.spec import build_spec, parse_line
from hfjobs_magic.jobs.record import JobRecord, PushTarget, Update
from hfjobs_magic.jobs.watch import note_push_lines
from hfjobs_magic.views.bundle import push_states
from hfjobs_magic.views.text import TextView
from tests.nbrun import execute, final_record, sandbox_env, text_of

LOAD = "%load_ext hfjobs_magic"
FLAGS = "--timeout 5m --yes"


def spec_of(line: str):
    return build_spec(parse_line(line))


# -- the wrapper's pieces -------------------------------------------------------------------------


def test_progress_line_is_what_the_watcher_parses():
    target = PushTarget("alice/run", "dataset")
    line = f"[hfjob] {persist.pushed_line(3, 12_400_000, target.where, '1a2b3c4')}"
    assert line == "[hfjob] pushed 3 files (12.4 MB) to dataset alice/run@1a2b3c4"
    s3 = PushTarget("s3://bucket/run", "s3")
    note_push_lines([target, s3], [line, f"[hfjob] {persist.pushed_line(1, 5, s3.where, None)}",
                                   "[hfjob] pushed 9 files (1 B) to model someone/else@abcdef1"])
    assert target.reported == [{"files": 3, "size": "12.4 MB", "ref": "1a2b3c4"}]
    assert s3.reported == [{"files": 1, "size": "5 B", "ref": None}]
    assert not target.verified and not s3.verified  # a log line is a claim; only the storage verifies


def test_failure_line_marks_the_target_and_a_later_push_clears_it():
    target = PushTarget("alice/run", "model")
    note_push_lines([target], ["[hfjob] push to model alice/run FAILED: HfHubHTTPError: 503 Service Unavailable"])
    assert target.failure == "HfHubHTTPError: 503 Service Unavailable"
    note_push_lines([target], ["[hfjob] pushed 1 file (2 B) to model alice/run@abcdef1"])
    assert target.failure is None


class Status(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.response = type("Response", (), {"status_code": status})()


def test_retries_transient_errors_with_doubling_delays(capsys):
    failures, delays = [Status(503), ConnectionError("reset")], []

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    assert persist.with_retries(flaky, "model alice/run", attempts=4, sleep=delays.append) == "done"
    assert delays == [0.5, 1.0]
    assert "push to model alice/run failed (attempt 1 of 4): Status: HTTP 503; retrying" in capsys.readouterr().out


@pytest.mark.parametrize("error", [Status(403), ValueError("bad")])
def test_does_not_retry_what_another_try_cannot_fix(error):
    calls = []

    def refused() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        persist.with_retries(refused, "model alice/run", attempts=4, sleep=lambda _s: None)
    assert len(calls) == 1


def test_last_attempt_raises():
    with pytest.raises(Status):
        persist.with_retries(lambda: (_ for _ in ()).throw(Status(502)), "x", attempts=3, sleep=lambda _s: None)


def test_botocore_and_network_errors_count_as_transient():
    throttled = Exception("slow down")
    throttled.response = {"ResponseMetadata": {"HTTPStatusCode": 503}}  # botocore's ClientError shape
    denied = Exception("denied")
    denied.response = {"ResponseMetadata": {"HTTPStatusCode": 403}}
    assert persist.is_transient(throttled) and not persist.is_transient(denied)
    assert persist.is_transient(TimeoutError()) and not persist.is_transient(KeyError("x"))


def test_snapshot_sees_nested_files_and_changes(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep.txt").write_text("1")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("x")
    (tmp_path / "top.txt").write_text("2")
    first = persist.snapshot(tmp_path)
    assert sorted(first) == ["a/b/deep.txt", "top.txt"]
    (tmp_path / "top.txt").write_text("22")
    assert persist.changed(persist.snapshot(tmp_path), first) == ["top.txt"]


def test_how_the_cell_ended_names_the_push():
    assert persist.final_reason(None) == persist.final_reason(SystemExit(0)) == "final"
    assert persist.final_reason(persist.Terminated()) == "final (stopped)"
    assert persist.outcome(ValueError("bad lr")) == "the cell raised ValueError: bad lr"


def test_indent_keeps_multiline_strings_byte_for_byte():
    code = 'text = """first\n  second\n\nthird"""\nvalue = (1 +\n    2)\nf = f"""{value}\n  x"""\n'
    before, after = {}, {}
    exec(code, before)
    exec("if True:\n" + wrapping.indent(code), after)
    assert (after["text"], after["value"], after["f"]) == (before["text"], before["value"], before["f"])


@pytest.mark.parametrize(("push", "needed", "not_needed"), [
    ("alice/run", "huggingface-hub", ("boto3", "google-cloud-storage")),
    ("s3://bucket/run", "boto3", ("google-cloud-storage",)),
    ("gs://bucket/run", "google-cloud-storage", ("boto3",)),
])
def test_script_depends_only_on_the_targets_client(push, needed, not_needed):
    script = build_script("print('hi')\n", spec_of(f"--outputs out --push {push}"))
    names = [d.split("==")[0] for d in script.dependencies]
    assert needed in names and not set(names) & set(not_needed)
    compile(script.text, "job.py", "exec")
    assert undefined_names(script.text) == {}  # the variables check stays quiet
    assert script.body == "print('hi')\n"  # the checks read the cell, not the wrapper


def test_script_with_its_own_metadata_block_still_gets_the_client():
    cell = "# /// script\n# dependencies = ['numpy']\n# ///\nimport numpy\n"
    script = build_script(cell, spec_of("--outputs out --push alice/run --no-pin"))
    assert script.dependencies == ["numpy", "huggingface-hub"]


def test_wrapper_source_ships_whole():
    text = build_script("x = 1\n", spec_of("--outputs out --push alice/run --sync-every 2s --card")).text
    assert wrapping.persist_source() in text
    assert "every_s=2" in text and "'notebook': ''" in text


# -- what the views say ------------------------------------------------------------------------------


def record_with(stage: str, **target: object) -> dict:
    record = JobRecord(id="j1", namespace="alice", url="http://x", flavor="cpu-basic", stage=stage)
    record.push.append(PushTarget("alice/run", "dataset", **target))
    return record.as_json()


def test_views_say_what_the_storage_confirmed():
    commits = [{"oid": "abc", "title": "hfjob j1: final push", "date": "2026-01-01T00:00:00Z"}]
    assert push_states(record_with("RUNNING", checked=True)) == [("wait", "dataset alice/run: nothing yet")]
    assert push_states(record_with("COMPLETED", checked=True, commits=commits, verified=True)) == [
        ("ok", "dataset alice/run: 1 commit(s), verified")]
    level, text = push_states(record_with("COMPLETED", checked=True))[0]
    assert level == "warn" and "NOTHING was pushed" in text
    level, text = push_states(record_with("ERROR", checked=True, failure="HTTP 503"))[0]
    assert level == "fail" and "push FAILED: HTTP 503" in text
    assert "not verified, could not ask" in push_states(
        record_with("COMPLETED", check_error="could not ask dataset alice/run: boom"))[0][1]


def test_widget_push_panel_escapes_job_text_and_flags_a_lost_target():
    from hfjobs_magic.views.widgets import JobWidget

    widget = JobWidget()
    widget.update(Update(record_with("RUNNING", checked=True, failure="<script>x</script>")))
    assert "&lt;script&gt;" in widget.pushes.value and "<script>" not in widget.pushes.value
    widget.update(Update(record_with("COMPLETED", checked=True), final=True))
    assert "NOTHING was pushed" in widget.pushes.value and "nothing reached alice/run" in widget.outcome.value


def test_text_view_warns_when_nothing_was_pushed():
    out = io.StringIO()
    TextView(out=out).update(Update(record_with("COMPLETED", checked=True), final=True))
    assert "[hfjob] WARNING: push dataset alice/run: NOTHING was pushed" in out.getvalue()


# -- whole jobs on the sandbox ---------------------------------------------------------------------------


def files_of(api: HfApi, repo: str, repo_type: str = "model") -> set[str]:
    return set(api.list_repo_files(repo, repo_type=repo_type)) - {".gitattributes"}


def test_a_crashing_cell_still_pushes_its_outputs(sandbox, api, tmp_path, unique_name):
    repo = f"{sandbox.user}/{unique_name}"
    cell = (f"%%hfjob {FLAGS} --outputs out --push {repo} --repo-type dataset --card\n"
            "import os\nos.makedirs('out/logs/run1', exist_ok=True)\n"
            "open('out/logs/run1/loss.csv', 'w').write('step,loss\\n1,0.5\\n')\n"
            "open('out/summary.txt', 'w').write('partial')\nopen('scratch.txt', 'w').write('not pushed')\n"
            "raise RuntimeError('diverged at step 2')")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "HfJobFailed" and "diverged at step 2" in err.evalue
    assert files_of(api, repo, "dataset") == {"logs/run1/loss.csv", "summary.txt", "README.md"}
    card = Path(api.hf_hub_download(repo, "README.md", repo_type="dataset", cache_dir=tmp_path / "cache"))
    assert "the cell raised RuntimeError: diverged at step 2" in card.read_text()
    target = final_record(nb.cells[1])["push"][0]
    assert target["verified"] and target["reported"] and target["reported"][-1]["files"] == 3
    assert any("final (after an error)" in c["title"] for c in target["commits"])
    lost = [line for line in text_of(nb.cells[1]).splitlines() if "[sandbox] job ended" in line]
    assert lost and "scratch.txt" in lost[-1] and "not counting 2 uploaded by --outputs" in lost[-1]


def test_timeout_pushes_the_checkpoint_on_sigterm(sandbox, api, tmp_path, unique_name):
    repo = f"{sandbox.user}/{unique_name}"
    cell = (f"%%hfjob --timeout 6 --yes --outputs ckpt --push {repo}\nimport time\n"
            "open('ckpt/step-100.txt', 'w').write('weights')\nprint('checkpoint written', flush=True)\n"
            "time.sleep(120)")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "HfJobFailed" and "timed out" in err.evalue
    assert files_of(api, repo) == {"step-100.txt"}
    assert "the job was stopped (SIGTERM: timeout or cancel)" in text_of(nb.cells[1])
    assert final_record(nb.cells[1])["push"][0]["verified"]


def wait_for_line(api: HfApi, job_id: str, namespace: str, needle: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(needle in line for line in api.fetch_job_logs(job_id=job_id, namespace=namespace)):
            return
        time.sleep(0.3)
    raise AssertionError(f"{needle!r} never appeared in the log of {job_id}")


def test_cancel_pushes_the_checkpoint(sandbox, api, tmp_path, unique_name):
    repo = f"{sandbox.user}/{unique_name}"
    env = sandbox_env(sandbox, tmp_path)
    cell = (f"%%hfjob {FLAGS} --detach --outputs ckpt --push {repo}\nimport time\n"
            "open('ckpt/epoch-1.txt', 'w').write('weights')\nprint('checkpoint written', flush=True)\n"
            "time.sleep(120)")
    nb, err = execute([LOAD, cell], env, tmp_path / "a.ipynb")
    assert err is None, err
    job_id = final_record(nb.cells[1])["id"]
    wait_for_line(api, job_id, sandbox.user, "checkpoint written")
    nb, err = execute([LOAD, f"%hfjob_cancel {job_id}"], env, tmp_path / "b.ipynb")
    assert err is None, err
    assert api.wait_for_job(job_id, namespace=sandbox.user, timeout=30).status.stage == "CANCELED"
    assert files_of(api, repo) == {"epoch-1.txt"}
    assert any("final (stopped)" in c.title for c in api.list_repo_commits(repo))


# Job code: wait until the wrapper's manifest lists `name` uploaded `times` times (a condition, not a sleep);
# write a file in one step.
WAIT_FOR_PUSH = """import json, os, time

def wait_for_push(name, times=1):
    deadline = time.monotonic() + 120
    while True:
        lines = open('.hfjob-pushed').read().splitlines() if os.path.exists('.hfjob-pushed') else []
        if sum(json.loads(line)['path'] == name for line in lines) >= times:
            return
        assert time.monotonic() < deadline, f'{name} was never pushed {times} time(s)'
        time.sleep(0.1)

def put(name, text):  # whole or not at all: a periodic push may come at any moment
    open('staged.tmp', 'w').write(text)
    os.replace('staged.tmp', name)
"""


def test_sync_every_pushes_during_the_run_and_only_what_changed(sandbox, api, tmp_path, unique_name):
    repo = f"{sandbox.user}/{unique_name}"
    cell = (f"%%hfjob {FLAGS} --outputs out --push {repo} --sync-every 1s\n{WAIT_FOR_PUSH}"
            "put('out/a.txt', 'a')\nput('out/b.txt', 'b')\n"
            "wait_for_push('out/a.txt')\nwait_for_push('out/b.txt')\n"
            "put('out/b.txt', 'b, changed')\nwait_for_push('out/b.txt', times=2)\n"
            "print('pushed', sorted(json.loads(line)['path'] for line in open('.hfjob-pushed')))")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    out = text_of(nb.cells[1])
    assert "pushed ['out/a.txt', 'out/b.txt', 'out/b.txt']" in out  # a.txt once: it never changed
    assert "nothing new to push: out/ is unchanged" in out  # so the final push has nothing to do
    titles = [c.title for c in api.list_repo_commits(repo)]
    assert sum("sync push" in t for t in titles) in (2, 3) and not any("final push" in t for t in titles)
    assert files_of(api, repo) == {"a.txt", "b.txt"}
    b = api.hf_hub_download(repo, "b.txt", cache_dir=tmp_path / "cache")
    assert Path(b).read_text() == "b, changed"
    target = final_record(nb.cells[1])["push"][0]
    assert target["verified"] and sum(r["files"] for r in target["reported"]) == 3


def test_a_push_survives_injected_503s(sandbox, api, tmp_path, unique_name):
    repo = f"{sandbox.user}/{unique_name}"
    api.create_repo(repo)
    injected = sandbox.faults.injected
    sandbox.faults.fail_next(2, status=503, path_prefix=f"/api/models/{repo}/commit/")
    cell = f"%%hfjob {FLAGS} --outputs out --push {repo}\nopen('out/result.txt', 'w').write('42')"
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    assert sandbox.faults.injected == injected + 2  # both failures really reached the job's pushes
    out = text_of(nb.cells[1])
    assert f"push to model {repo} failed (attempt 1 of 4)" in out and "(attempt 2 of 4)" in out
    assert files_of(api, repo) == {"result.txt"}
    assert final_record(nb.cells[1])["push"][0]["verified"]


def test_the_card_says_which_job_flavor_notebook_cell_and_script(sandbox, api, tmp_path, unique_name):
    repo = f"{sandbox.user}/{unique_name}"
    env = sandbox_env(sandbox, tmp_path, JPY_SESSION_NAME="train-card.ipynb")
    cell = f"%%hfjob {FLAGS} --outputs out --push {repo} --card\nopen('out/result.txt', 'w').write('42')"
    nb, err = execute([LOAD, cell], env, tmp_path / "n.ipynb")
    assert err is None, err
    record = final_record(nb.cells[1])
    assert files_of(api, repo) == {"result.txt", "README.md"}
    card = Path(api.hf_hub_download(repo, "README.md", cache_dir=tmp_path / "cache")).read_text()
    assert card.startswith("# Results of a Hugging Face job\n")
    for row in (f"| Job | {record['id']} |", "| Flavor | cpu-basic |", "| Ended | the cell finished |",
                "| Notebook | train-card.ipynb |", f"| Cell | {record['cell']} |"):
        assert row in card, row
    script = card.split("## The script\n\n````python\n", 1)[1]
    assert "# /// script" in script and "open('out/result.txt', 'w').write('42')" in script


def test_a_repo_the_cell_pushes_to_that_gets_nothing_is_a_warning(sandbox, api, tmp_path, unique_name):
    repo = f"{sandbox.user}/{unique_name}"
    api.create_repo(repo)
    cell = (f"%%hfjob {FLAGS}\nfrom huggingface_hub import HfApi\nif False:  # never runs\n"
            f"    HfApi().upload_file(path_or_fileobj=b'1', path_in_repo='x.txt', repo_id='{repo}')\nprint('skipped')")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err  # no --push target of its own: the cell does not fail
    (target,) = final_record(nb.cells[1])["push"]
    assert (target["repo_id"], target["declared"], target["verified"], target["checked"]) == (repo, False, False, True)
    assert f"WARNING: push model {repo}: NOTHING was pushed" in text_of(nb.cells[1])


@pytest.mark.parametrize("status", [503, 403])
def test_a_refused_final_push_fails_the_job_naming_the_target(sandbox, tmp_path, unique_name, status):
    repo = f"{sandbox.user}/{unique_name}"
    sandbox.faults.fail_next(100, status=status, path_prefix=f"/api/datasets/{repo}/commit/")
    cell = f"%%hfjob {FLAGS} --outputs out --push {repo} --repo-type dataset\nopen('out/result.txt', 'w').write('42')"
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "HfJobFailed"
    failed = err.evalue.splitlines()[1]  # the server's reason, not the request id huggingface_hub may put first
    assert f"push to dataset {repo} FAILED" in failed and str(status) in failed, failed
    target = final_record(nb.cells[1])["push"][0]
    assert target["failure"] and not target["verified"]


def test_nested_folders_and_a_50_mb_file_arrive_intact(sandbox, api, tmp_path, unique_name):
    repo = f"{sandbox.user}/{unique_name}"
    cell = (f"%%hfjob {FLAGS} --outputs out --push {repo}\nimport os, random\n"
            "os.makedirs('out/a/b/c', exist_ok=True)\n"
            "open('out/a/b/c/big.bin', 'wb').write(random.Random(7).randbytes(50_000_000))\n"
            "open('out/a/notes.txt', 'w').write('small')")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    assert files_of(api, repo) == {"a/b/c/big.bin", "a/notes.txt"}
    big = api.hf_hub_download(repo, "a/b/c/big.bin", cache_dir=tmp_path / "cache")
    with open(big, "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(random.Random(7).randbytes(50_000_000)).digest()


def test_a_target_that_received_nothing_is_reported(sandbox, tmp_path, unique_name):
    """The job claims a push in its log; the Hub has nothing: unattended, that fails unless --allow-no-push."""
    repo = f"{sandbox.user}/{unique_name}"
    claim = f"print('[hfjob] pushed 3 files (1.2 kB) to model {repo}@abcdef1')"
    cells = [LOAD, f"%%hfjob {FLAGS} --outputs out --push {repo}\n{claim}",
             f"%%hfjob {FLAGS} --outputs out --push {repo} --allow-no-push\n{claim}"]
    nb, _ = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb", allow_errors=True)
    strict, allowed = nb.cells[1], nb.cells[2]
    assert "HfJobFailed" in text_of(strict) and f"nothing reached {repo}" in text_of(strict)
    for cell in (strict, allowed):
        record = final_record(cell)
        assert record["stage"] == "COMPLETED"
        target = record["push"][0]
        assert target["reported"] and target["checked"] and not target["verified"] and not target["commits"]
    assert "HfJobFailed" not in text_of(allowed)
    assert f"WARNING: push model {repo}: NOTHING was pushed" in text_of(allowed)

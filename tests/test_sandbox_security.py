"""The sandbox runs code as its user: closed to strangers, clean job environments, and robust storage.

Tokens are random per data dir, a well-known or foreign token gets 401, a bind
beyond loopback needs a chosen token, jobs never see the server's own secrets,
a restart mid-job loses the job visibly, 50 concurrent jobs keep their own logs,
and a full disk answers 507 without harming any repo.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from hfjobs_magic.mask import TOKEN_LITERAL
from hfjobs_magic.sandbox import Sandbox
from hfjobs_magic.sandbox.jobs import LOST_MESSAGE, STOPPED_MESSAGE
from hfjobs_magic.sandbox.tokens import TOKENS_FILE, exposure_problem, exposure_warning, is_loopback
from tests.polling import wait_for
from tests.served import HFJOB, served

NS = "alice"
IMAGE = "python:3.12"


def status_of(err: pytest.ExceptionInfo[HfHubHTTPError]) -> int:
    return err.value.response.status_code



def own_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("[sandbox] ")]


# -- tokens --------------------------------------------------------------------------------------
def tokens_of(sb: Sandbox) -> tuple[str, str, str]:
    return sb.token, sb.read_token, sb.other_token


def test_tokens_are_random_kept_per_data_dir_and_readable_by_the_owner_only(tmp_path: Path) -> None:
    with Sandbox(data_dir=tmp_path / "a") as first:
        kept = tokens_of(first)
    with Sandbox(data_dir=tmp_path / "a") as again:
        assert tokens_of(again) == kept
        assert HfApi(endpoint=again.endpoint, token=kept[0]).whoami()["name"] == NS
    with Sandbox(data_dir=tmp_path / "b") as other, Sandbox() as temporary:
        assert not set(kept) & set(tokens_of(other)) and not set(kept) & set(tokens_of(temporary))
    assert len(set(kept)) == 3 and all(TOKEN_LITERAL.fullmatch(t) and len(t) == 37 for t in kept)  # the Hub's shape
    assert stat.S_IMODE((tmp_path / "a" / TOKENS_FILE).stat().st_mode) == 0o600


def test_given_tokens_win_and_are_not_written_down(tmp_path: Path) -> None:
    with Sandbox(data_dir=tmp_path, token="hf_MineToWrite", read_token="hf_MineToRead") as sb:
        assert (sb.token, sb.read_token) == ("hf_MineToWrite", "hf_MineToRead")
        assert HfApi(endpoint=sb.endpoint, token="hf_MineToRead").whoami()["auth"]["accessToken"]["role"] == "read"
    assert "hf_Mine" not in (tmp_path / TOKENS_FILE).read_text()


def test_cli_keeps_its_tokens_across_a_restart_of_the_same_data_dir(tmp_path: Path) -> None:
    with served("--data-dir", str(tmp_path / "d"), stderr_path=tmp_path / "err") as first:
        kept = (first.token, first.comment("read-only token"))
    with served("--data-dir", str(tmp_path / "d"), stderr_path=tmp_path / "err") as again:
        assert (again.token, again.comment("read-only token")) == kept
    with served("--data-dir", str(tmp_path / "e"), stderr_path=tmp_path / "err") as other:
        assert other.token not in kept


WELL_KNOWN = ["hf_sandbox_alice_write_token", "hf_sandbox_alice_read_token", "hf_sandbox_bob_write_token",
              "hf_" + "a" * 34]


@pytest.mark.parametrize("token", WELL_KNOWN)
def test_a_well_known_token_gets_401(sandbox: Sandbox, token: str) -> None:
    api = HfApi(endpoint=sandbox.endpoint, token=token)
    for call in (api.whoami, lambda: api.run_job(image=IMAGE, command=["true"], namespace=NS),
                 lambda: api.create_repo(f"{NS}/never-made")):
        with pytest.raises(HfHubHTTPError) as err:
            call()
        assert status_of(err) == 401


def test_another_sandboxs_token_gets_401(sandbox: Sandbox) -> None:
    with Sandbox() as other:
        for token in tokens_of(other):
            with pytest.raises(HfHubHTTPError) as err:
                HfApi(endpoint=sandbox.endpoint, token=token).whoami()
            assert status_of(err) == 401


# -- who may reach it ------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_needs_no_token_and_no_warning(host: str) -> None:
    assert is_loopback(host) and exposure_problem(host, None) is None and exposure_warning(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "my-laptop.example"])
def test_beyond_loopback_a_token_must_be_chosen_and_the_start_warns(host: str) -> None:
    problem = exposure_problem(host, None)
    assert problem is not None and "--token" in problem and host in problem
    assert exposure_problem(host, "hf_ChosenByTheUser") is None
    warning = exposure_warning(host)
    assert warning is not None and "jobs run as user" in warning and "on this machine" in warning
    with pytest.raises(ValueError, match="--token"):
        Sandbox(host=host)


def test_cli_refuses_0000_without_a_token(tmp_path: Path) -> None:
    done = subprocess.run([str(HFJOB), "sandbox", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert "--host 0.0.0.0" in done.stderr and "--token" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "d").exists()  # refused before anything was made


# -- a clean job environment -----------------------------------------------------------------------
CANARIES = {
    "HF_TOKEN": "hf_CanaryOfTheServingProcess0000000",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret",
    "AWS_ACCESS_KEY_ID": "canary-aws-key-id",
    "GITHUB_TOKEN": "canary-github-token",
    "MY_APP_SECRET": "canary-app-secret",
    "UV_PUBLISH_TOKEN": "canary-uv-publish-token",  # an inherited prefix (UV_) must not carry it
    "UV_INDEX_PRIVATE_PASSWORD": "canary-uv-index-password",
    "PIP_PASSWORD": "canary-pip-password",
    "NVIDIA_API_KEY": "canary-nvidia-key",
}
PASSED_ON = {  # what a container has too: proxies, certificates, locale, package index settings
    "https_proxy": "http://proxy.invalid:3128",
    "NO_PROXY": "localhost,127.0.0.1",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "UV_INDEX_URL": "https://pypi.org/simple",
}


def test_a_job_never_sees_the_sandboxs_own_secrets(tmp_path: Path) -> None:
    env = {**os.environ, **CANARIES, **PASSED_ON}
    with served("--data-dir", str(tmp_path / "d"), env=env, stderr_path=tmp_path / "err") as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        job = api.run_job(image=IMAGE, command=["python", "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                          env={"MINE": "from the spec"}, secrets={"MY_SECRET": "from the spec too"}, namespace=NS)
        wait_for(lambda: api.inspect_job(job_id=job.id, namespace=NS).status.stage == "COMPLETED", "the job")
        lines = list(api.fetch_job_logs(job_id=job.id, namespace=NS))
    seen = json.loads(own_lines(lines)[0])
    for name, value in CANARIES.items():
        assert all(value not in line for line in lines), f"{name} of the sandbox leaked into the job"
    assert "HF_TOKEN" not in seen and "AWS_ACCESS_KEY_ID" not in seen
    assert {k: seen.get(k) for k in PASSED_ON} == PASSED_ON
    assert seen["MINE"] == "from the spec" and seen["MY_SECRET"] == "from the spec too"
    assert seen["HF_ENDPOINT"] == sb.endpoint and seen["JOB_ID"] == job.id
    assert Path(seen["PATH"].split(os.pathsep)[0], "python").exists()  # a Python (with uv) comes first
    assert Path(seen["HOME"]).parent == Path(seen["TMPDIR"]).parent  # its own home and /tmp, gone when it ends


# -- restarts mid-job ------------------------------------------------------------------------------
def job_state(data_dir: Path, job_id: str) -> dict:
    return json.loads((data_dir / "jobs" / job_id / "job.json").read_text())


def test_a_job_that_finished_while_the_sandbox_was_dead_is_lost_not_completed(tmp_path: Path) -> None:
    """SIGKILL the sandbox while a job runs; the job then exits 0 on its own, unseen. After a restart it
    is ERROR, saying the sandbox restarted, never COMPLETED."""
    data = tmp_path / "d"
    marker = tmp_path / "job-ran-to-its-end"
    code = f"import pathlib, time\ntime.sleep(2)\npathlib.Path({str(marker)!r}).write_text('done')"
    with served("--data-dir", str(data), stderr_path=tmp_path / "err") as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        job = api.run_job(image=IMAGE, command=["python", "-c", code], namespace=NS)
        wait_for(lambda: job_state(data, job.id)["stage"] == "RUNNING", "the job to run")
        sb.proc.kill()
        sb.proc.wait()
    wait_for(marker.exists, "the orphaned job to end by itself")
    with Sandbox(data_dir=data) as again:
        api = HfApi(endpoint=again.endpoint, token=again.token)
        info = api.inspect_job(job_id=job.id, namespace=NS)
        assert info.status.stage == "ERROR" and info.status.message == LOST_MESSAGE
        assert "restarted" in LOST_MESSAGE
        assert list(api.fetch_job_logs(job_id=job.id, namespace=NS))[-1] == f"[sandbox] {LOST_MESSAGE}"
        assert [j.status.stage for j in api.list_jobs(namespace=NS)] == ["ERROR"]


def test_a_job_running_when_the_sandbox_is_stopped_is_error_after_restart(tmp_path: Path) -> None:
    data = tmp_path / "d"
    with served("--data-dir", str(data), stderr_path=tmp_path / "err") as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        job = api.run_job(image=IMAGE, command=["python", "-c", "import time; time.sleep(120)"], namespace=NS)
        wait_for(lambda: job_state(data, job.id)["stage"] == "RUNNING", "the job to run")
        assert sb.stop() == 0  # Ctrl-C: running jobs are killed
    with Sandbox(data_dir=data) as again:
        info = HfApi(endpoint=again.endpoint, token=again.token).inspect_job(job_id=job.id, namespace=NS)
        assert info.status.stage == "ERROR" and info.status.message == STOPPED_MESSAGE


def test_a_log_line_torn_by_a_crash_does_not_swallow_the_restart_note(tmp_path: Path) -> None:
    with Sandbox(data_dir=tmp_path) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        job = api.run_job(image=IMAGE, command=["python", "-c", "print('whole line')"], namespace=NS)
        wait_for(lambda: api.inspect_job(job_id=job.id, namespace=NS).status.stage == "COMPLETED", "the job")
    record = tmp_path / "jobs" / job.id / "job.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "stage": "RUNNING"}))  # as a crash leaves it
    with open(tmp_path / "jobs" / job.id / "logs.jsonl", "ab") as log:
        log.write(b'{"data": "half a li')  # the crash cut this line short
    with Sandbox(data_dir=tmp_path) as again:
        lines = list(HfApi(endpoint=again.endpoint, token=again.token).fetch_job_logs(job_id=job.id, namespace=NS))
    assert own_lines(lines) == ["whole line"] and lines[-1] == f"[sandbox] {LOST_MESSAGE}"


# -- many jobs at once -----------------------------------------------------------------------------
JOBS = 50
LINES_PER_JOB = 40


def test_fifty_concurrent_jobs_each_get_exactly_their_own_log(fresh_sandbox: Sandbox) -> None:
    api = HfApi(endpoint=fresh_sandbox.endpoint, token=fresh_sandbox.token)

    def one(i: int) -> tuple[list[str], list[str], list[str]]:
        code = f"for k in range({LINES_PER_JOB}): print('job {i} line', k, flush=k % 7 == 0)"
        job = api.run_job(image=IMAGE, command=["python", "-c", code], namespace=NS, timeout=600)
        followed = list(api.fetch_job_logs(job_id=job.id, namespace=NS, follow=True))
        wait_for(lambda: api.inspect_job(job_id=job.id, namespace=NS).status.stage in ("COMPLETED", "ERROR"), "end")
        stage = api.inspect_job(job_id=job.id, namespace=NS).status.stage
        replayed = list(api.fetch_job_logs(job_id=job.id, namespace=NS))
        return [stage], own_lines(followed), own_lines(replayed)

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        results = list(pool.map(one, range(JOBS)))
    for i, (stage, followed, replayed) in enumerate(results):
        expected = [f"job {i} line {k}" for k in range(LINES_PER_JOB)]
        assert stage == ["COMPLETED"], (i, replayed)
        assert followed == expected and replayed == expected, i


# -- a full disk -----------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs, so writes fail with a real ENOSPC (needs root to mount; skipped otherwise)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith((".tmp-", ".incoming-"))]


def test_a_commit_larger_than_the_disk_gets_507_and_the_repo_stays_whole(small_disk: Path, tmp_path: Path) -> None:
    """A real full disk (tmpfs of 2 MiB): an inline commit bigger than the space."""
    repo = f"{NS}/on-a-small-disk"
    with Sandbox(data_dir=small_disk / "data") as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        api.create_repo(repo)
        before = api.upload_file(path_or_fileobj=b"small and safe", path_in_repo="small.txt", repo_id=repo).oid
        with pytest.raises(HfHubHTTPError) as err:  # a text file, sent inline in the commit
            api.upload_file(path_or_fileobj=b"x" * (3 * 1024 * 1024), path_in_repo="big.txt", repo_id=repo)
        assert status_of(err) == 507 and "no space left" in str(err.value)
        assert api.repo_info(repo).sha == before
        assert leftovers(small_disk) == []
        assert Path(hf_hub_download(repo, "small.txt", revision=before, endpoint=sb.endpoint, token=sb.token,
                                    cache_dir=tmp_path / "cache")).read_bytes() == b"small and safe"
        after = api.upload_file(path_or_fileobj=b"still writable", path_in_repo="later.txt", repo_id=repo).oid
    with Sandbox(data_dir=small_disk / "data") as again:  # what is on disk reads back whole
        api = HfApi(endpoint=again.endpoint, token=again.token)
        assert [c.commit_id for c in api.list_repo_commits(repo)][:2] == [after, before]
        assert sorted(api.list_repo_files(repo)) == [".gitattributes", "later.txt", "small.txt"]


def test_a_commit_line_cut_by_a_full_disk_is_undone(small_disk: Path) -> None:
    """The file fits but its commit record does not: the half-written record line is cut off again."""
    repo = f"{NS}/many-files"
    data = small_disk / "data"
    with Sandbox(data_dir=data) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        api.create_repo(repo)
        ops = [CommitOperationAdd(f"folder/file-{i:04d}-with-a-longish-name.txt", b"x") for i in range(400)]
        before = api.create_commit(repo, ops, commit_message="many files").oid
        record = next(data.rglob("commits.jsonl"))
        _fill(small_disk / "filler", keep_free=record.stat().st_size // 3)
        with pytest.raises(HfHubHTTPError) as err:
            api.upload_file(path_or_fileobj=b"tiny", path_in_repo="tiny.txt", repo_id=repo)
        assert status_of(err) == 507
        assert record.read_bytes().endswith(b"\n") and api.repo_info(repo).sha == before
        (small_disk / "filler").unlink()
        after = api.upload_file(path_or_fileobj=b"tiny", path_in_repo="tiny.txt", repo_id=repo).oid
    with Sandbox(data_dir=data) as again:
        api = HfApi(endpoint=again.endpoint, token=again.token)
        assert [c.commit_id for c in api.list_repo_commits(repo)][:2] == [after, before]


def _fill(path: Path, keep_free: int) -> None:
    """Take all the free space of the file system but `keep_free` bytes (rounded to its blocks)."""
    fs = os.statvfs(path.parent)
    size = max(0, fs.f_bavail * fs.f_frsize - keep_free)
    with open(path, "wb") as handle:
        handle.write(b"\0" * size)


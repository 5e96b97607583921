"""Job volumes in the sandbox: buckets and repos mounted where the job asks, each job seeing only its own.

Real jobs (local processes in their own mount namespace), the real client and `hf` CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, Volume
from huggingface_hub.errors import HfHubHTTPError

from hfjobs_magic.sandbox import Sandbox
from hfjobs_magic.sandbox.volumes import holding_folders, namespace_support

IMAGE = "python:3.12"
HF_BIN = Path(sys.executable).parent / "hf"

pytestmark = pytest.mark.skipif(namespace_support()[1] is not None,
                                reason=f"no private mount namespaces here: {namespace_support()[1]}")


def finish(api: HfApi, job_id: str, timeout: float = 60):
    return api.wait_for_job(job_id, namespace="alice", poll_interval=0.1, timeout=timeout)


def own_lines(api: HfApi, job_id: str) -> list[str]:
    return [line for line in api.fetch_job_logs(job_id=job_id, namespace="alice") if not line.startswith("[sandbox]")]


def wait_for_line(api: HfApi, job_id: str, needle: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(needle in line for line in api.fetch_job_logs(job_id=job_id, namespace="alice")):
            return
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} never appeared in the log of {job_id}")


def shell_job(api: HfApi, script: str, volumes: list[Volume], **kwargs):
    return api.run_job(image=IMAGE, command=["sh", "-c", script], volumes=volumes, namespace="alice", **kwargs)


@pytest.fixture
def dataset(api: HfApi, sandbox: Sandbox, unique_name: str) -> str:
    repo_id = f"{sandbox.user}/{unique_name}"
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"train rows\n", path_in_repo="train/rows.txt", repo_id=repo_id,
                    repo_type="dataset")
    return repo_id


def test_concurrent_jobs_with_the_same_mount_path_see_their_own_buckets(api: HfApi, sandbox: Sandbox,
                                                                        unique_name: str) -> None:
    script = ("echo $JOB_ID > /data/$NAME.txt; trap 'ls /data; exit 0' TERM; ls $SANDBOX_DATA; echo ready; "
              "while :; do sleep 0.1; done")
    jobs = []
    for name in ("one", "two"):
        bucket = f"{sandbox.user}/{unique_name}-{name}"
        api.create_bucket(bucket)
        jobs.append(shell_job(api, script, [Volume(type="bucket", source=bucket, mount_path="/data")],
                              env={"NAME": name, "SANDBOX_DATA": str(sandbox.data_dir)}))
        wait_for_line(api, jobs[-1].id, "ready")
    assert {api.inspect_job(job_id=j.id, namespace="alice").status.stage for j in jobs} == {"RUNNING"}
    for job in jobs:
        api.cancel_job(job_id=job.id, namespace="alice")
        finish(api, job.id)
    listed = [[line for line in own_lines(api, job.id) if line.endswith(".txt")] for job in jobs]
    assert listed == [["one.txt"], ["two.txt"]]  # each job, when the other one had written too
    assert [own_lines(api, job.id)[0] for job in jobs] == ["ready", "ready"]  # the data dir itself is hidden
    assert not Path("/data/one.txt").exists() and not Path("/data/two.txt").exists()


def test_files_a_job_writes_next_to_its_volume_are_reported_lost(api: HfApi, sandbox: Sandbox,
                                                                  unique_name: str) -> None:
    """A bucket at /hfjob/ckpt (as --outputs with a bucket target mounts it): what lands in the bucket is kept;
    a file written beside it, in /hfjob, dies with the job and the last log line says so."""
    bucket = f"{sandbox.user}/{unique_name}"
    api.create_bucket(bucket)
    script = "cd /hfjob && echo kept > ckpt/step-1.txt && echo stray > model.bin && ls"
    job = shell_job(api, script, [Volume(type="bucket", source=bucket, mount_path="/hfjob/ckpt")])
    assert finish(api, job.id).status.stage == "COMPLETED"
    lines = list(api.fetch_job_logs(job_id=job.id, namespace="alice"))
    assert "model.bin" in lines and "ckpt" in lines
    assert lines[-1] == "[sandbox] job ended; 1 file left in its working dir would be lost: /hfjob/model.bin (6 B)"
    assert [f.path for f in api.list_bucket_tree(bucket, recursive=True)] == ["step-1.txt"]
    assert not Path("/hfjob").exists()  # the job's folder was never made on the host


@pytest.mark.parametrize(("paths", "held"), [
    (["/data"], {}),  # right under /: nothing to hold it
    (["/hfjob/ckpt", "/hfjob/logs"], {"/hfjob": ["/hfjob/ckpt", "/hfjob/logs"]}),
    (["/no-such/a/b"], {"/no-such": ["/no-such/a/b"]}),  # the top-most folder the host lacks
    (["/data", "/data/sub/x"], {}),  # inside another volume: that volume holds it
    (["/tmp/x"], {}),  # the host has /tmp: mirrored as before
])
def test_folders_above_mount_paths_that_the_host_lacks_are_held_for_the_report(paths, held) -> None:
    assert holding_folders(paths) == held


def test_repo_volume_is_readable_and_read_only(api: HfApi, dataset: str) -> None:
    code = ("import sys\nprint(open('/in/rows.txt').read().strip())\n"
            "try:\n    open('/in/new.txt', 'w')\nexcept OSError as err:\n    print('refused', err.strerror)\n")
    volume = Volume(type="dataset", source=dataset, mount_path="/mnt/in", path="train", read_only=False)
    job = api.run_job(image=IMAGE, command=["python", "-c", code.replace("/in/", "/mnt/in/")], volumes=[volume],
                      namespace="alice")
    assert job.volumes[0].read_only is True  # forced for repos, as on the Hub
    assert finish(api, job.id).status.stage == "COMPLETED"
    assert own_lines(api, job.id) == ["train rows", "refused Read-only file system"]


def test_hf_jobs_run_mounts_a_dataset_read_only(sandbox: Sandbox, dataset: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=sandbox.endpoint, HF_TOKEN=sandbox.token, HF_HOME=str(tmp_path / "hf-home"))
    done = subprocess.run(
        [str(HF_BIN), "jobs", "run", "-v", f"hf://datasets/{dataset}:/data:ro", IMAGE,
         "python", "-c", "print(open('/data/train/rows.txt').read().strip())"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "train rows" in done.stdout


def test_volumes_the_caller_cannot_mount_are_refused(api: HfApi, sandbox: Sandbox, unique_name: str) -> None:
    private = f"{sandbox.user}/{unique_name}"
    api.create_bucket(private, private=True)
    bob = HfApi(endpoint=sandbox.endpoint, token=sandbox.other_token)
    cases = [
        (api, "alice", Volume(type="bucket", source=f"{sandbox.user}/{unique_name}-none", mount_path="/data"), 404),
        (bob, "bob", Volume(type="bucket", source=private, mount_path="/data", read_only=True), 404),
        (api, "alice", Volume(type="bucket", source=private, mount_path="relative"), 400),
        (api, "alice", Volume(type="dataset", source=f"{sandbox.user}/{unique_name}-none", mount_path="/d"), 404),
    ]
    for client, namespace, volume, status in cases:
        with pytest.raises(HfHubHTTPError) as err:
            client.run_job(image=IMAGE, command=["true"], volumes=[volume], namespace=namespace)
        assert err.value.response.status_code == status, (volume, err.value)


def test_a_read_only_member_cannot_mount_a_bucket_read_write(sandbox: Sandbox, unique_name: str) -> None:
    bob = HfApi(endpoint=sandbox.endpoint, token=sandbox.other_token)
    bucket = f"bob/{unique_name}"
    bob.create_bucket(bucket)
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    with pytest.raises(HfHubHTTPError) as err:
        api.run_job(image=IMAGE, command=["true"], namespace="alice",
                    volumes=[Volume(type="bucket", source=bucket, mount_path="/data", read_only=False)])
    assert err.value.response.status_code == 403


# -- these need the Xet CAS: listing hashes the files a job wrote, uploads go through it -------------


def test_what_a_killed_job_wrote_to_its_bucket_stays(api: HfApi, sandbox: Sandbox, unique_name: str,
                                                     tmp_path: Path) -> None:
    bucket = f"{sandbox.user}/{unique_name}"
    api.create_bucket(bucket)
    code = ("import os, signal\nos.makedirs('/out/ckpt')\n"
            "open('/out/ckpt/step-1.bin', 'wb').write(bytes(range(256)) * 400)\n"
            "open('/out/log.txt', 'w').write('epoch 1')\n"
            "os.killpg(os.getpgid(0), signal.SIGKILL)\n")
    job = api.run_job(image=IMAGE, command=["python", "-c", code], namespace="alice",
                      volumes=[Volume(type="bucket", source=bucket, mount_path="/out", path="run-1")])
    assert finish(api, job.id).status.stage == "ERROR"
    files = {e.path: e.size for e in api.list_bucket_tree(bucket, recursive=True) if e.type == "file"}
    assert files == {"run-1/ckpt/step-1.bin": 102_400, "run-1/log.txt": 7}
    api.download_bucket_files(bucket, [("run-1/ckpt/step-1.bin", str(tmp_path / "step.bin"))])
    assert (tmp_path / "step.bin").read_bytes() == bytes(range(256)) * 400


def test_hf_jobs_uv_run_a_local_script(sandbox: Sandbox, api: HfApi, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("import sys\nopen('/data/result.txt', 'w').write('trained')\n"
                      "print('args', *sys.argv[1:])\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=sandbox.endpoint, HF_TOKEN=sandbox.token, HF_HOME=str(tmp_path / "hf-home"))
    done = subprocess.run([str(HF_BIN), "jobs", "uv", "run", str(script), "--epochs", "3"],
                          env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "args --epochs 3" in done.stdout
    files = {e.path.split("/", 1)[1] for e in api.list_bucket_tree(f"{sandbox.user}/jobs-artifacts", recursive=True)
             if e.type == "file"}
    assert {"train.py", "result.txt"} <= files


def test_a_host_without_mount_namespaces_refuses_volume_jobs(api: HfApi, sandbox: Sandbox, unique_name: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    api.create_bucket(f"{sandbox.user}/{unique_name}")
    monkeypatch.setenv("PATH", "/nonexistent")  # no `unshare` to be found
    namespace_support.cache_clear()
    try:
        with pytest.raises(HfHubHTTPError) as err:
            api.run_job(image=IMAGE, command=["true"], namespace="alice",
                        volumes=[Volume(type="bucket", source=f"{sandbox.user}/{unique_name}", mount_path="/data")])
    finally:
        namespace_support.cache_clear()
    assert err.value.response.status_code == 422
    assert "'unshare' command (util-linux) is not installed" in str(err.value)


def test_tree_pages_and_rehashes_what_a_job_changed(api: HfApi, sandbox: Sandbox, unique_name: str) -> None:
    bucket = f"{sandbox.user}/{unique_name}"
    api.create_bucket(bucket)
    api.batch_bucket_files(bucket, add=[(b"v1", "notes.txt")])
    [before] = api.get_bucket_paths_info(bucket, ["notes.txt"])
    script = "echo more >> /b/notes.txt; for i in 1 2 3 4; do echo $i > /b/f$i.txt; done"
    job = shell_job(api, script, [Volume(type="bucket", source=bucket, mount_path="/b")])
    assert finish(api, job.id).status.stage == "COMPLETED"

    url = f"{sandbox.endpoint}/api/buckets/{bucket}/tree?limit=2"
    headers, paths, pages = {"authorization": f"Bearer {sandbox.token}"}, [], 0
    while url:
        answer = httpx.get(url, headers=headers)
        paths += [entry["path"] for entry in answer.json()]
        url, pages = answer.links.get("next", {}).get("url"), pages + 1
    assert (paths, pages) == (["f1.txt", "f2.txt", "f3.txt", "f4.txt", "notes.txt"], 3)
    [after] = api.get_bucket_paths_info(bucket, ["notes.txt"])
    assert after.size == len(b"v1more\n") and after.xet_hash != before.xet_hash


def test_hf_jobs_run_with_a_local_folder_volume(sandbox: Sandbox, tmp_path: Path) -> None:
    local = tmp_path / "inputs"
    local.mkdir()
    (local / "p.txt").write_text("payload")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=sandbox.endpoint, HF_TOKEN=sandbox.token, HF_HOME=str(tmp_path / "hf-home"))
    done = subprocess.run(  # synced to the jobs-artifacts bucket, then mounted read-only by default
        [str(HF_BIN), "jobs", "run", "-v", f"{local}:/inputs", IMAGE, "sh", "-c",
         "cat /inputs/p.txt; echo; touch /inputs/new || echo read-only"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "payload\n" in done.stdout and "read-only\n" in done.stdout

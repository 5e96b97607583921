"""The sandbox's Jobs API, driven by the real `huggingface_hub` client and the `hf` CLI.

Real HTTP on loopback, real processes; nothing mocked. Every call passes
`namespace=` (without it the client calls whoami first).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from hfjobs_magic.sandbox import Sandbox
from hfjobs_magic.sandbox.jobs import LOST_MESSAGE

NS = "alice"
IMAGE = "python:3.12"
HF_BIN = Path(sys.executable).parent / "hf"


# -- helpers -------------------------------------------------------------------------
def run(api: HfApi, code: str, **kwargs):
    """Start `python -c code` as a job of alice."""
    return api.run_job(image=IMAGE, command=["python", "-c", code], namespace=NS, **kwargs)


def finish(api: HfApi, job, timeout: float = 30):
    return api.wait_for_job(job.id, namespace=NS, poll_interval=0.1, timeout=timeout)


def logs(api: HfApi, job, follow: bool = False, **kwargs) -> list[str]:
    return list(api.fetch_job_logs(job_id=job.id, namespace=NS, follow=follow, **kwargs))


def own_lines(lines: list[str]) -> list[str]:
    """The job's own output, without the sandbox's notes."""
    return [line for line in lines if not line.startswith("[sandbox] ")]


def first_line(api: HfApi, job, prefix: str) -> str:
    """Follow the job's log until a line starting with `prefix`, then close the stream."""
    stream = api.fetch_job_logs(job_id=job.id, namespace=NS, follow=True)
    try:
        return next(line for line in stream if line.startswith(prefix))
    finally:
        stream.close()


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an unreaped zombie runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def timeout_of(endpoint: str, token: str, job) -> int:
    """The job's timeout as the Jobs API answers it (`JobInfo` does not carry it)."""
    import httpx

    answer = httpx.get(f"{endpoint}/api/jobs/{NS}/{job.id}", headers={"authorization": f"Bearer {token}"}, timeout=30)
    return answer.json()["timeoutSeconds"]


def status_of(err: pytest.ExceptionInfo) -> int:
    return err.value.response.status_code


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:10]


# -- running jobs --------------------------------------------------------------------
def test_run_job_sees_env_and_secrets_and_only_them(api, sandbox, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_host_token_must_not_leak")  # the host's, never a job's
    code = (
        "import os, shutil\n"
        "e = os.environ\n"
        "print('env', e['GREETING'], e['MY_SECRET'])\n"
        "print('endpoint', e['HF_ENDPOINT'], e['JOB_ID'], e['UV_PYTHON_DOWNLOADS'], e['PYTHONUNBUFFERED'])\n"
        "print('uv', bool(shutil.which('uv')), 'host-token', 'HF_TOKEN' in e)\n"
        "print('home-writable', os.access(e['HOME'], os.W_OK))\n"
    )
    job = run(api, code, env={"GREETING": "hello"}, secrets={"MY_SECRET": "s3cret-value"})
    assert re.fullmatch(r"[0-9a-f]{24}", job.id)
    assert job.status.stage in ("SCHEDULING", "RUNNING")
    done = finish(api, job)
    assert done.status.stage == "COMPLETED", done.status
    lines = own_lines(logs(api, job))
    assert lines == [
        "env hello s3cret-value",
        f"endpoint {sandbox.endpoint} {job.id} never 1",
        "uv True host-token False",
        "home-writable True",
    ]
    # The secret's value never comes back, and never reaches the sandbox's disk.
    assert done.secrets == {"MY_SECRET": "********"}
    assert done.environment == {"GREETING": "hello"}
    assert "s3cret-value" not in repr(done) + repr(list(api.list_jobs(namespace=NS)))
    record = (sandbox.data_dir / "jobs" / job.id / "job.json").read_text()
    assert "s3cret-value" not in record
    assert done.owner.name == NS and done.owner.type == "user"
    assert done.initiator.name == NS
    assert done.created_at <= done.started_at <= done.finished_at
    assert done.durations.total_secs is not None


@pytest.mark.filterwarnings("ignore:'HfApi.run_uv_job' is experimental")
def test_run_uv_job_command_mode(api):
    code = "import os, sys; print('uv-ok', os.environ['A'], os.environ['TOK'], sys.version_info >= (3, 9))"
    job = api.run_uv_job(
        "python",
        script_args=["-c", code],
        env={"A": "1"},
        secrets={"TOK": "tok-value"},
        namespace=NS,
    )
    assert job.command[:3] == ["uv", "run", "python"]
    assert finish(api, job).status.stage == "COMPLETED"
    lines = logs(api, job)
    assert lines[0].startswith("[sandbox] image 'ghcr.io/astral-sh/uv:python3.12-bookworm' was not pulled")
    assert "uv-ok 1 tok-value True" in lines


def test_logs_without_follow_are_complete_after_the_end(api):
    job = run(api, "import sys\nfor i in range(300): print('line', i, file=sys.stderr if i % 2 else sys.stdout)")
    assert finish(api, job).status.stage == "COMPLETED"
    lines = logs(api, job)
    assert lines[0].startswith("[sandbox] image 'python:3.12' was not pulled; the command runs on the host")
    assert lines[1:] == [f"line {i}" for i in range(300)]  # stdout and stderr merged, in order
    assert logs(api, job) == lines  # the replay is the same every time
    assert logs(api, job, tail=5) == lines[-5:]


def test_follow_delivers_lines_while_the_job_runs(api, tmp_path):
    go_on = tmp_path / "go-on"  # the job waits for this file, so it is surely running when "first" arrives
    code = (f"import os, time\nprint('first', flush=True)\n"
            f"while not os.path.exists({str(go_on)!r}): time.sleep(0.05)\nprint('second')")
    job = run(api, code)
    received, stage_at_first = [], None
    for line in api.fetch_job_logs(job_id=job.id, namespace=NS, follow=True):
        if line == "first":
            stage_at_first = api.inspect_job(job_id=job.id, namespace=NS).status.stage
            go_on.touch()
        received.append(line)
    assert stage_at_first == "RUNNING"  # "first" came before the job ended
    assert own_lines(received) == ["first", "second"]
    # The stream only ends once the final stage is recorded.
    assert api.inspect_job(job_id=job.id, namespace=NS).status.stage == "COMPLETED"


def test_output_edge_cases_long_lines_carriage_returns_unicode(api):
    code = (
        "import sys\n"
        "print('x' * 200_000)\n"
        "sys.stdout.write('10%\\r20%\\r30%\\r\\n')\n"
        "print('\\u00e9' * 40_000)\n"
        "sys.stdout.buffer.write(b'bad \\xff byte\\n')\n"
        "sys.stdout.write('no newline at the end')\n"
    )
    job = run(api, code)
    assert finish(api, job).status.stage == "COMPLETED"
    lines = own_lines(logs(api, job, follow=True))
    xs = [line for line in lines if line.startswith("x")]
    assert "".join(xs) == "x" * 200_000 and max(map(len, xs)) <= 16 * 1024
    assert lines[len(xs)] == "10%\r20%\r30%\r"  # split on \n only, as container runtimes do
    accents = [line for line in lines if line.startswith("\u00e9")]
    assert "".join(accents) == "\u00e9" * 40_000  # cut between characters, never inside one
    assert "bad \ufffd byte" in lines
    assert lines[-1] == "no newline at the end"


def test_nonzero_exit_is_error_with_the_code(api):
    job = run(api, "import sys; print('bye'); sys.exit(3)")
    done = finish(api, job)
    assert done.status.stage == "ERROR"
    assert "exit code 3" in done.status.message


def test_command_that_cannot_start_is_error(api):
    job = api.run_job(image=IMAGE, command=["no-such-command-hfjob"], namespace=NS)
    done = finish(api, job)
    assert done.status.stage == "ERROR"
    assert "no-such-command-hfjob" in done.status.message
    assert "could not start" in logs(api, job)[-1]


def test_timeout_stops_the_job_even_if_it_ignores_sigterm(api, sandbox):
    sandbox.jobs.grace_seconds = 0.5
    try:
        polite = run(api, "import time; time.sleep(60)", timeout=1)
        stubborn = run(api, "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)",
                       timeout="1s")
        for job in (polite, stubborn):
            done = finish(api, job)
            assert done.status.stage == "ERROR"
            assert "timed out after 1 s" in done.status.message
            assert any("timeout of 1 s reached" in line for line in logs(api, job))
    finally:
        sandbox.jobs.grace_seconds = 5.0


def test_a_job_without_a_timeout_gets_the_servers_default(api, fresh_sandbox):
    """The Hub stops a job that asked for no timeout after 30 minutes; the sandbox's default is settable."""
    job = run(api, "print(1)")
    assert timeout_of(api.endpoint, api.token, job) == 1800  # the real default, by default
    finish(api, job)
    fresh = HfApi(endpoint=fresh_sandbox.endpoint, token=fresh_sandbox.token)
    fresh_sandbox.jobs.default_timeout = 1
    fresh_sandbox.jobs.grace_seconds = 0.5
    job = run(fresh, "import time; time.sleep(60)")
    assert timeout_of(fresh.endpoint, fresh.token, job) == 1
    done = finish(fresh, job)
    assert done.status.stage == "ERROR" and "timed out after 1 s" in done.status.message


def test_cancel_ends_the_whole_process_group(api):
    code = (
        "import subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "print('child', child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    job = run(api, code)
    child_pid = int(first_line(api, job, "child ").split()[1])
    assert alive(child_pid)
    api.cancel_job(job_id=job.id, namespace=NS)
    done = finish(api, job)
    assert done.status.stage == "CANCELED"
    assert "alice" in done.status.message
    assert not alive(child_pid)
    api.cancel_job(job_id=job.id, namespace=NS)  # canceling an ended job changes nothing
    assert api.inspect_job(job_id=job.id, namespace=NS).status.stage == "CANCELED"


def test_the_working_dir_is_gone_and_its_files_are_reported_lost(api):
    code = (
        "import os\n"
        "os.makedirs('out')\n"
        "open('out/model.bin', 'wb').write(b'0' * 12_000_000)\n"
        "open('notes.txt', 'w').write('hi')\n"
        "print(os.getcwd())\n"
        "print(os.environ['HOME'])\n"
    )
    job = run(api, code)
    assert finish(api, job).status.stage == "COMPLETED"
    lines = logs(api, job)
    workdir, home = Path(lines[1]), Path(lines[2])
    assert not workdir.exists() and not home.exists()
    assert lines[-1] == (
        "[sandbox] job ended; 2 files left in its working dir would be lost: "
        "out/model.bin (12.0 MB), notes.txt (2 B)"
    )


def test_a_file_changed_after_its_push_is_reported_lost(api):
    """The --outputs wrapper's manifest (written here by its own code) keeps pushed files off the lost list,
    unless they changed after their push."""
    root = Path(__file__).resolve().parents[1]
    code = (
        "import os\nfrom pathlib import Path\nfrom hfjobs_magic.cell.persist import MANIFEST, Pusher, snapshot\n"
        "os.makedirs('out')\nopen('out/a.txt', 'w').write('aaa')\nopen('out/b.txt', 'w').write('bbb')\n"
        "Pusher(Path('out'), None, Path(MANIFEST)).record(['a.txt', 'b.txt'], snapshot(Path('out')))\n"
        "open('out/b.txt', 'w').write('b, changed after its push')\n"
    )
    job = run(api, code, env={"PYTHONPATH": str(root)})
    assert finish(api, job).status.stage == "COMPLETED", logs(api, job)
    assert logs(api, job)[-1] == (
        "[sandbox] job ended; 1 file left in its working dir would be lost (not counting 1 uploaded by --outputs): "
        "out/b.txt (25 B)"
    )


def test_a_job_that_leaves_nothing_gets_no_lost_files_line(api):
    job = run(api, "print('clean')")
    finish(api, job)
    assert logs(api, job)[-1] == "clean"


def test_job_pushes_to_the_sandbox_with_its_token_secret(api, sandbox, unique_name):
    repo_id = f"{NS}/{unique_name}"
    api.create_repo(repo_id)
    code = (
        "from huggingface_hub import HfApi\n"
        f"HfApi().upload_file(path_or_fileobj=b'made in a job', path_in_repo='result.txt', repo_id='{repo_id}')\n"
        "print('pushed')\n"
    )
    job = run(api, code, secrets={"HF_TOKEN": sandbox.token})
    done = finish(api, job, timeout=60)
    assert done.status.stage == "COMPLETED", logs(api, job)
    assert "result.txt" in api.list_repo_files(repo_id)


# -- listing and hardware -------------------------------------------------------------
def test_list_jobs_filters_by_stage_and_label_and_paginates(api, sandbox, tag):
    slow = run(api, "import time; time.sleep(60)", labels={"suite": tag, "kind": "slow"})
    fast = run(api, "print(1)", labels={"suite": tag, "kind": "fast"})
    finish(api, fast)

    def ids(**kwargs) -> list[str]:
        return [job.id for job in api.list_jobs(namespace=NS, **kwargs)]

    try:
        assert ids(labels={"suite": tag}) == [fast.id, slow.id]  # newest first
        assert ids(labels={"suite": tag, "kind": "fast"}) == [fast.id]
        assert ids(status="RUNNING", labels={"suite": tag}) == [slow.id]
        assert ids(status=["running", "SCHEDULING"], labels={"suite": tag}) == [slow.id]
        assert ids(status=["COMPLETED", "ERROR"], labels={"suite": tag}) == [fast.id]
        assert ids(labels={"suite": "no-such-" + tag}) == []
        sandbox.jobs.page_size = 1  # two pages, followed through the Link header
        assert ids(labels={"suite": tag}) == [fast.id, slow.id]
    finally:
        sandbox.jobs.page_size = 50
        api.cancel_job(job_id=slow.id, namespace=NS)
    assert finish(api, slow).status.stage == "CANCELED"


# Public Jobs prices in USD per hour (hf.co/pricing, as remote/hardware.py cites them), billed per minute;
# written here, not read from our table, so a wrong price or a dropped flavor in the table fails.
KNOWN_FLAVORS = {
    "cpu-basic": (0.01, None),
    "cpu-upgrade": (0.03, None),
    "t4-small": (0.40, "T4"),
    "l4x1": (0.80, "L4"),
    "a10g-large": (1.50, "A10G"),
    "a100-large": (2.50, "A100"),
    "h200": (5.00, "H200"),
}


def test_list_jobs_hardware_serves_the_public_flavors_and_prices(api):
    hardware = {hw.name: hw for hw in api.list_jobs_hardware()}
    for name, (usd_per_hour, gpu) in KNOWN_FLAVORS.items():
        hw = hardware[name]
        assert hw.unit_label == "minute"
        assert hw.unit_cost_usd == pytest.approx(usd_per_hour / 60, abs=1e-6), name
        assert (hw.accelerator.model if hw.accelerator else None) == gpu, name
    assert hardware["a10g-large"].accelerator.quantity == "1" and hardware["a10g-large"].accelerator.vram == "24 GB"
    assert hardware["cpu-basic"].cpu == "2 vCPU" and hardware["cpu-basic"].ram == "16 GB"
    assert all(hw.unit_cost_usd > 0 for hw in hardware.values())


def test_bad_specs_are_refused(api):
    with pytest.raises(HfHubHTTPError) as err:
        api.run_job(image=IMAGE, command=["true"], flavor="a10g-largo", namespace=NS)
    assert status_of(err) == 400 and "a10g-largo" in str(err.value)
    with pytest.raises(HfHubHTTPError) as err:
        api.inspect_job(job_id="0" * 24, namespace=NS)
    assert status_of(err) == 404


# -- rights ------------------------------------------------------------------------------
def test_rights_are_checked_like_the_hub(api, read_api, sandbox):
    for namespace in ("big-corp", "bob"):
        with pytest.raises(HfHubHTTPError) as err:
            api.run_job(image=IMAGE, command=["true"], namespace=namespace)
        assert status_of(err) == 403
    with pytest.raises(HfHubHTTPError) as err:
        read_api.run_job(image=IMAGE, command=["true"], namespace=NS)
    assert status_of(err) == 403
    anonymous = HfApi(endpoint=sandbox.endpoint, token=False)
    with pytest.raises(HfHubHTTPError) as err:
        anonymous.run_job(image=IMAGE, command=["true"], namespace=NS)
    assert status_of(err) == 401

    job = api.run_job(image=IMAGE, command=["true"], namespace="alice-lab")  # a writable org
    assert job.owner.type == "org" and job.initiator.name == "alice"
    assert read_api.inspect_job(job_id=job.id, namespace="alice-lab").id == job.id  # reading is fine
    with pytest.raises(HfHubHTTPError) as err:
        read_api.cancel_job(job_id=job.id, namespace="alice-lab")
    assert status_of(err) == 403
    bob = HfApi(endpoint=sandbox.endpoint, token=sandbox.other_token)
    with pytest.raises(HfHubHTTPError) as err:
        bob.inspect_job(job_id=job.id, namespace="alice-lab")
    assert status_of(err) == 403
    with pytest.raises(HfHubHTTPError) as err:
        list(anonymous.list_jobs(namespace=NS))
    assert status_of(err) == 401


# -- injected faults -------------------------------------------------------------------
def test_injected_503s_reach_the_client_then_calls_succeed(api, sandbox):
    job = run(api, "print('ok')")
    sandbox.faults.fail_next(2, path_prefix="/api/jobs")
    for _ in range(2):
        with pytest.raises(HfHubHTTPError) as err:
            api.inspect_job(job_id=job.id, namespace=NS)
        assert status_of(err) == 503
    assert api.inspect_job(job_id=job.id, namespace=NS).id == job.id


def test_dropped_log_stream_reconnects_without_loss_or_repeat(api, sandbox):
    code = (
        "import time\n"
        "for i in range(10): print('a', i, flush=True)\n"
        "time.sleep(3.5)\n"  # still running when the client comes back (it waits ~2 s)
        "for i in range(10): print('b', i)\n"
    )
    job = run(api, code)
    injected = sandbox.faults.injected
    sandbox.faults.drop_logs_after(5)
    received = logs(api, job, follow=True)
    assert sandbox.faults.injected == injected + 1  # the stream really was cut
    assert received == logs(api, job)  # exactly the job's lines: none lost, none repeated
    assert own_lines(received) == [f"a {i}" for i in range(10)] + [f"b {i}" for i in range(10)]


def test_injected_delay_holds_every_answer_back(api, sandbox):
    """A 30 s delay outlasts a client that waits 0.5 s; cleared, the same call answers."""
    import httpx

    job = run(api, "print('ok')")
    url = f"{sandbox.endpoint}/api/jobs/{NS}/{job.id}"
    headers = {"authorization": f"Bearer {sandbox.token}"}
    sandbox.faults.delay(30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, headers=headers, timeout=httpx.Timeout(5, read=0.5))
    sandbox.faults.clear()
    assert httpx.get(url, headers=headers, timeout=30).json()["id"] == job.id


# -- restarts ----------------------------------------------------------------------------
def test_a_finished_job_survives_a_restart(tmp_path):
    with Sandbox(data_dir=tmp_path) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        job = run(api, "print('before restart')")
        finish(api, job)
        before = logs(api, job)
    with Sandbox(data_dir=tmp_path) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        again = api.inspect_job(job_id=job.id, namespace=NS)
        assert again.status.stage == "COMPLETED"
        assert logs(api, job) == before
        assert [j.id for j in api.list_jobs(namespace=NS)] == [job.id]


def test_a_job_running_when_the_sandbox_died_is_error_after_restart(tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "hfjobs_magic.cli", "sandbox", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        endpoint = server.stdout.readline().strip().removeprefix("HF_ENDPOINT=")
        token = server.stdout.readline().strip().removeprefix("HF_TOKEN=")
        api = HfApi(endpoint=endpoint, token=token)
        job = run(api, "import os, time\nprint('pid', os.getpid(), flush=True)\ntime.sleep(60)")
        pid = int(first_line(api, job, "pid ").split()[1])
    finally:
        server.kill()  # no shutdown: the job's process outlives its sandbox
        server.wait()
    with Sandbox(data_dir=tmp_path) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        done = api.inspect_job(job_id=job.id, namespace=NS)
        assert done.status.stage == "ERROR" and done.status.message == LOST_MESSAGE
        assert done.finished_at is not None
        assert logs(api, job)[-1] == f"[sandbox] {LOST_MESSAGE}"
        assert not alive(pid)  # the restarted sandbox killed what the dead one left behind


# -- the hf CLI ---------------------------------------------------------------------------
@pytest.fixture
def hf(sandbox, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": sandbox.endpoint, "HF_TOKEN": sandbox.token,
           "HF_HOME": str(tmp_path / "hf-home"), "NO_COLOR": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1"}

    def call(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(HF_BIN), "jobs", *args], env=env, capture_output=True, text=True, timeout=60)
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        return done

    return call


def test_hf_jobs_cli(hf, api, tag):
    ran = hf("run", "--namespace", NS, IMAGE, "python", "-c", "print('hello from the cli')")
    assert "hello from the cli" in ran.stdout and "completed" in ran.stdout
    failed = hf("run", "--namespace", NS, IMAGE, "python", "-c", "raise SystemExit(7)", ok=False)
    assert "exit code 7" in failed.stdout + failed.stderr

    started = hf("run", "--detach", "--namespace", NS, "--label", f"suite={tag}", "--secrets", "TOK=cli-secret",
                 IMAGE, "python", "-c", "import time; print('cli-slow', flush=True); time.sleep(60)")
    job_id = re.search(r"id: ([0-9a-f]{24})", started.stdout).group(1)
    listed = json.loads(hf("ps", "--namespace", NS, "--label", f"suite={tag}", "--format", "json").stdout)
    assert [(item["id"], item["status"]) for item in listed] == [(job_id, "RUNNING")]
    inspected = hf("inspect", "--namespace", NS, "--format", "json", job_id).stdout
    assert job_id in inspected and "cli-secret" not in inspected

    assert "cancelled" in hf("cancel", f"{NS}/{job_id}").stdout
    assert api.wait_for_job(job_id, namespace=NS, poll_interval=0.1, timeout=30).status.stage == "CANCELED"
    listed = json.loads(hf("ps", "--namespace", NS, "--label", f"suite={tag}", "--status", "canceled",
                           "--format", "json").stdout)
    assert [item["id"] for item in listed] == [job_id]
    printed = hf("logs", "--namespace", NS, job_id).stdout.splitlines()
    assert "cli-slow" in printed and "canceled by alice" in printed[-1]
    assert hf("logs", "--namespace", NS, "--tail", "1", job_id).stdout.splitlines() == printed[-1:]

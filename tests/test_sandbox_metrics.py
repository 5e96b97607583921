"""Job metrics over SSE, through the real `fetch_job_metrics` and `hf jobs stats`; the GPU knob.

Real jobs, real processes, real HTTP on loopback. Conditions are polled with
generous deadlines; nothing asserts on time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from hfjobs_magic.sandbox import Sandbox
from hfjobs_magic.sandbox.metrics import FAKE_GPU_BYTES, FAKE_GPU_ID
from tests.polling import wait_for

NS = "alice"
IMAGE = "python:3.12"
HF_BIN = Path(sys.executable).parent / "hf"
BUSY = "x = b'x' * 150_000_000\nwhile True:\n    pass"  # one core busy, 150 MB resident
IDLE = "import time; time.sleep(120)"
FIELDS = {"cpu_usage_pct", "cpu_millicores", "memory_used_bytes", "memory_total_bytes", "rx_bps", "tx_bps",
          "gpus", "replica"}


def run(api: HfApi, code: str, **kwargs):
    return api.run_job(image=IMAGE, command=["python", "-c", code], namespace=NS, **kwargs)


def sample(api: HfApi, job) -> dict | None:
    """One event, as `hf jobs stats` takes it (follow=False: the first event, then the client hangs up)."""
    return next(iter(api.fetch_job_metrics(job_id=job.id, namespace=NS)), None)



def set_faults(sandbox: Sandbox, **plan: object) -> dict:
    answer = httpx.post(f"{sandbox.endpoint}/_sandbox/faults", json=plan)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def jobs(api):
    """Jobs a test starts, canceled at its end whatever happens."""
    started = []
    yield started
    for job in started:
        api.cancel_job(job_id=job.id, namespace=NS)


def test_busy_job_uses_more_cpu_and_memory_than_an_idle_one(api, jobs):
    busy, idle = run(api, BUSY), run(api, IDLE)
    jobs += [busy, idle]

    def busier() -> bool:
        hot, cold = sample(api, busy), sample(api, idle)
        return bool(hot and cold and hot["cpu_usage_pct"] > cold["cpu_usage_pct"] + 10
                    and hot["memory_used_bytes"] > cold["memory_used_bytes"] + 100_000_000)

    wait_for(busier, "the busy job's CPU and memory above the idle job's")
    event = sample(api, idle)
    assert event is not None and set(event) == FIELDS
    assert event["cpu_millicores"] >= 1000 and event["memory_total_bytes"] > event["memory_used_bytes"] > 0
    assert event["gpus"] == {}  # a CPU flavor, no knob


def test_following_metrics_ends_when_the_job_ends(api):
    job = run(api, "import time; time.sleep(3)")
    events = list(api.fetch_job_metrics(job_id=job.id, namespace=NS, follow=True))
    assert events and all(set(e) == FIELDS for e in events)
    assert api.inspect_job(job_id=job.id, namespace=NS).status.stage == "COMPLETED"
    # A finished job has no metrics: the server answers 406, which the client takes as "no events".
    assert list(api.fetch_job_metrics(job_id=job.id, namespace=NS)) == []


def test_gpu_knob_shows_in_events_until_set_to_minus_one(api, sandbox, jobs):
    jobs.append(job := run(api, IDLE))
    assert set_faults(sandbox, gpu_utilization=37)["gpu_utilization"] == 37
    gpus = wait_for(lambda: (sample(api, job) or {}).get("gpus"), "a GPU in the events")
    assert gpus == {FAKE_GPU_ID: {"utilization": 37, "memory_used_bytes": FAKE_GPU_BYTES * 37 // 100,
                                  "memory_total_bytes": FAKE_GPU_BYTES}}
    set_faults(sandbox, gpu_utilization=-1)
    wait_for(lambda: (sample(api, job) or {}).get("gpus") == {}, "no GPU once the knob is -1")


def test_gpu_knob_refuses_values_out_of_range(sandbox):
    answer = httpx.post(f"{sandbox.endpoint}/_sandbox/faults", json={"gpu_utilization": 101})
    assert answer.status_code == 400 and "0-100" in answer.json()["error"]


def test_stream_closes_when_the_client_goes_away(fresh_sandbox):
    api = HfApi(endpoint=fresh_sandbox.endpoint, token=fresh_sandbox.token)
    job = run(api, IDLE)
    try:
        url = f"{fresh_sandbox.endpoint}/api/jobs/{NS}/{job.id}/metrics"
        headers = {"Authorization": f"Bearer {fresh_sandbox.token}"}
        with httpx.stream("GET", url, headers=headers, timeout=30) as response:
            lines = response.iter_lines()  # kept: a dropped iterator would close the connection already
            line = next(line for line in lines if line.startswith("data: {"))
            assert set(json.loads(line[len("data: "):])) == FIELDS
            assert fresh_sandbox.state.metric_streams.open == 1
        wait_for(lambda: fresh_sandbox.state.metric_streams.open == 0, "the server's stream closed")
    finally:
        api.cancel_job(job_id=job.id, namespace=NS)


def test_metrics_need_a_member_of_the_namespace(sandbox, api, jobs):
    from huggingface_hub.errors import HfHubHTTPError

    jobs.append(job := run(api, IDLE))
    answer = httpx.get(f"{sandbox.endpoint}/api/jobs/{NS}/{job.id}/metrics", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401
    with pytest.raises(HfHubHTTPError):
        list(api.fetch_job_metrics(job_id="0" * 24, namespace=NS))


def hf_jobs(sandbox: Sandbox, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": sandbox.endpoint, "HF_TOKEN": sandbox.token,
           "HF_HOME": str(tmp_path / "hf-home"), "NO_COLOR": "1", "COLUMNS": "250"}
    done = subprocess.run([str(HF_BIN), "jobs", *args], env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_hf_jobs_stats_prints_a_row_with_the_gpu(api, sandbox, jobs, tmp_path):
    jobs.append(job := run(api, IDLE))
    set_faults(sandbox, gpu_utilization=55)
    table = hf_jobs(sandbox, tmp_path, "stats", f"{NS}/{job.id}").stdout
    assert "CPU %" in table and "GPU UTIL %" in table
    row = next(line for line in table.splitlines() if line.startswith(job.id[:12]))
    assert "55%" in row and "24.0GB" in row


def test_hf_jobs_stats_follow_ends_when_the_job_ends(api, sandbox, tmp_path):
    job = run(api, "import time; time.sleep(3)")
    followed = hf_jobs(sandbox, tmp_path, "stats", "-f", f"{NS}/{job.id}")
    assert "Stream ended" in followed.stdout + followed.stderr and job.id[:12] in followed.stdout
    assert api.inspect_job(job_id=job.id, namespace=NS).status.stage == "COMPLETED"

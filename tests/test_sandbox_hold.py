"""The `hold_scheduling` fault knob: new jobs wait in SCHEDULING, as in a busy queue, until it is cleared."""

from __future__ import annotations

import time

import httpx

from hfjobs_magic.sandbox.jobs import HELD_MESSAGE

NS = "alice"


def stage_becomes(api, job_id: str, stage: str, deadline_s: float = 60):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        info = api.inspect_job(job_id=job_id, namespace=NS)
        if info.status.stage == stage:
            return info
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {stage}")


def test_held_jobs_stay_scheduling_until_the_knob_is_cleared(api, sandbox):
    answer = httpx.post(f"{sandbox.endpoint}/_sandbox/faults", json={"hold_scheduling": True})
    assert answer.status_code == 200 and answer.json()["hold_scheduling"] is True
    job = api.run_job(image="python:3.12", command=["python", "-c", "print('ran')"], namespace=NS)
    canceled = api.run_job(image="python:3.12", command=["python", "-c", "print('never')"], namespace=NS)
    for queued in (job, canceled):
        assert queued.status.stage == "SCHEDULING"
        info = api.inspect_job(job_id=queued.id, namespace=NS)
        assert info.status.stage == "SCHEDULING" and info.status.message == HELD_MESSAGE
        assert info.started_at is None
    api.cancel_job(job_id=canceled.id, namespace=NS)
    assert stage_becomes(api, canceled.id, "CANCELED").started_at is None
    assert api.inspect_job(job_id=job.id, namespace=NS).status.stage == "SCHEDULING"  # still held

    sandbox.faults.set(hold_scheduling="false")  # as the environment variable would say it
    done = api.wait_for_job(job.id, namespace=NS, poll_interval=0.1, timeout=60)
    assert done.status.stage == "COMPLETED" and done.status.message is None
    assert "ran" in list(api.fetch_job_logs(job_id=job.id, namespace=NS))

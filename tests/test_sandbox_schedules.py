"""Scheduled jobs: every `HfApi` call and `hf jobs scheduled` command against a real sandbox.

Runs fire through the sandbox's real scheduler thread; to keep tests short, a
sandbox made with `schedule_time_scale=60` lives a minute of schedule per second.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, JobNotFoundError

from hfjobs_magic.sandbox import Sandbox
from hfjobs_magic.sandbox.jobs import SECRET_MASK
from hfjobs_magic.sandbox.schedules import SCHEDULED_LABEL
from tests.polling import wait_for

NS = "alice"
IMAGE = "python:3.12"
HF_BIN = Path(sys.executable).parent / "hf"


def schedule(api: HfApi, code: str = "print('scheduled hello')", when: str = "@hourly", **kwargs):
    return api.create_scheduled_job(image=IMAGE, command=["python", "-c", code], schedule=when, namespace=NS,
                                    **kwargs)



def runs_of(api: HfApi, scheduled_id: str) -> list:
    return [job for job in api.list_jobs(namespace=NS) if job.labels.get(SCHEDULED_LABEL) == scheduled_id]


@pytest.fixture(autouse=True)
def _no_schedules_left(api):
    """The session sandbox fires schedules too: none may outlive its test and start runs in others."""
    yield
    for namespace in (NS, "alice-lab"):
        for item in api.list_scheduled_jobs(namespace=namespace):
            api.delete_scheduled_job(scheduled_job_id=item.id, namespace=namespace)


def test_create_inspect_and_list_with_labels(api, unique_name):
    made = schedule(api, labels={"team": unique_name}, env={"A": "1"}, secrets={"TOKEN": "s3cret"}, timeout="5m")
    assert made.schedule == "@hourly" and made.suspend is False and made.concurrency is False
    assert made.owner.name == NS and made.owner.type == "user"
    spec = made.job_spec
    assert spec.docker_image == IMAGE and spec.command[0] == "python" and spec.timeout == 300
    assert spec.environment == {"A": "1"} and spec.secrets == {"TOKEN": SECRET_MASK}
    assert spec.labels["team"] == unique_name and spec.labels["name"]
    now = datetime.now(timezone.utc)
    next_run = made.status.next_job_run_at
    assert (next_run.minute, next_run.second) == (0, 0) and 0 < (next_run - now).total_seconds() <= 3600
    assert made.status.last_job is None
    assert api.inspect_scheduled_job(scheduled_job_id=made.id, namespace=NS).job_spec.labels == spec.labels

    other = schedule(api, labels={"team": unique_name + "-other"})
    listed = [s.id for s in api.list_scheduled_jobs(namespace=NS, labels={"team": unique_name})]
    assert listed == [made.id]
    everything = [s.id for s in api.list_scheduled_jobs(namespace=NS)]
    assert made.id in everything and other.id in everything


def test_suspend_resume_reschedule_relabel_trigger_delete(api):
    made = schedule(api, labels={"keep": "no"})
    api.suspend_scheduled_job(scheduled_job_id=made.id, namespace=NS)
    suspended = api.inspect_scheduled_job(scheduled_job_id=made.id, namespace=NS)
    assert suspended.suspend is True and suspended.status.next_job_run_at is None
    api.resume_scheduled_job(scheduled_job_id=made.id, namespace=NS)
    assert api.inspect_scheduled_job(scheduled_job_id=made.id, namespace=NS).suspend is False

    moved = api.update_scheduled_job_schedule(scheduled_job_id=made.id, schedule="0 9 * * 1", namespace=NS)
    at = moved.status.next_job_run_at
    assert moved.schedule == "0 9 * * 1" and (at.weekday(), at.hour, at.minute) == (0, 9, 0)
    relabeled = api.update_scheduled_job_labels(scheduled_job_id=made.id, labels={"only": "this"}, namespace=NS)
    assert relabeled.job_spec.labels == {"only": "this"}

    job = api.trigger_scheduled_job(scheduled_job_id=made.id, namespace=NS)
    assert job.labels == {"only": "this", SCHEDULED_LABEL: made.id}
    assert api.wait_for_job(job.id, namespace=NS, poll_interval=0.1, timeout=60).status.stage == "COMPLETED"
    assert "scheduled hello" in list(api.fetch_job_logs(job_id=job.id, namespace=NS))
    assert api.inspect_scheduled_job(scheduled_job_id=made.id, namespace=NS).status.last_job.id == job.id
    assert api.inspect_scheduled_job(scheduled_job_id=made.id, namespace=NS).schedule == "0 9 * * 1"

    api.delete_scheduled_job(scheduled_job_id=made.id, namespace=NS)
    with pytest.raises(JobNotFoundError):
        api.inspect_scheduled_job(scheduled_job_id=made.id, namespace=NS)
    assert made.id not in [s.id for s in api.list_scheduled_jobs(namespace=NS)]


def test_trigger_refuses_a_second_run_unless_concurrency_is_on(api):
    slow = "import time; time.sleep(60)"
    single, multi = schedule(api, slow), schedule(api, slow, concurrency=True)
    first = api.trigger_scheduled_job(scheduled_job_id=single.id, namespace=NS)
    try:
        with pytest.raises(HfHubHTTPError) as refused:
            api.trigger_scheduled_job(scheduled_job_id=single.id, namespace=NS)
        assert refused.value.response.status_code == 409 and first.id in str(refused.value)
        both = [api.trigger_scheduled_job(scheduled_job_id=multi.id, namespace=NS) for _ in range(2)]
        assert len({job.id for job in both}) == 2
    finally:
        for job in [first, *locals().get("both", [])]:
            api.cancel_job(job_id=job.id, namespace=NS)


@pytest.mark.parametrize("bad", ["61 * * * *", "every day", "* * * * * *", "@reboot", ""])
def test_a_bad_schedule_is_a_400_that_says_what_is_accepted(api, bad):
    with pytest.raises(HfHubHTTPError) as refused:
        schedule(api, when=bad)
    assert refused.value.response.status_code == 400
    assert "@hourly" in str(refused.value) and "five cron fields" in str(refused.value)


def test_access_rules_are_those_of_jobs(sandbox, api, read_api):
    made = schedule(api)
    assert read_api.inspect_scheduled_job(scheduled_job_id=made.id, namespace=NS).id == made.id
    for call in (lambda: schedule(read_api), lambda: read_api.delete_scheduled_job(scheduled_job_id=made.id,
                                                                                     namespace=NS)):
        with pytest.raises(HfHubHTTPError) as refused:
            call()
        assert refused.value.response.status_code == 403
    bob = HfApi(endpoint=sandbox.endpoint, token=sandbox.other_token)
    with pytest.raises(HfHubHTTPError) as hidden:
        bob.list_scheduled_jobs(namespace=NS)
    assert hidden.value.response.status_code == 403
    org = api.create_scheduled_job(image=IMAGE, command=["true"], schedule="@daily", namespace="alice-lab")
    assert org.owner.type == "org" and org.owner.name == "alice-lab"


@pytest.mark.filterwarnings("ignore:.*is experimental:UserWarning")
def test_scheduled_uv_job(api):
    made = api.create_scheduled_uv_job("python", script_args=["-c", "print('uv ran')"], schedule="@daily",
                                       suspend=True, namespace=NS)
    assert made.suspend is True and made.job_spec.command[:2] == ["uv", "run"]
    job = api.trigger_scheduled_job(scheduled_job_id=made.id, namespace=NS)
    assert api.wait_for_job(job.id, namespace=NS, poll_interval=0.1, timeout=120).status.stage == "COMPLETED"
    assert "uv ran" in list(api.fetch_job_logs(job_id=job.id, namespace=NS))


def test_an_every_minute_schedule_fires_runs_through_the_scheduler(tmp_path):
    with Sandbox(schedule_time_scale=60) as sb:  # a minute of schedule per second
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        every = api.create_scheduled_job(image=IMAGE, command=["python", "-c", "import os; print(os.environ['K'])"],
                                         schedule="* * * * *", secrets={"K": "from a secret"}, namespace=NS)
        paused = api.create_scheduled_job(image=IMAGE, command=["true"], schedule="* * * * *", suspend=True,
                                          namespace=NS)
        runs = wait_for(lambda: len(found := runs_of(api, every.id)) >= 2 and found, "two runs fired")
        done = api.wait_for_job(runs[-1].id, namespace=NS, poll_interval=0.1, timeout=60)
        assert done.status.stage == "COMPLETED" and done.initiator.name == NS
        assert "from a secret" in list(api.fetch_job_logs(job_id=done.id, namespace=NS))
        last = api.inspect_scheduled_job(scheduled_job_id=every.id, namespace=NS).status.last_job
        assert last.id in {run.id for run in runs_of(api, every.id)}
        assert runs_of(api, paused.id) == []  # suspended: never fired while the other fired twice


def test_a_run_still_going_makes_the_scheduler_skip_unless_concurrency_is_on():
    with Sandbox(schedule_time_scale=60) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        slow = ["python", "-c", "import time; time.sleep(120)"]
        single = api.create_scheduled_job(image=IMAGE, command=slow, schedule="* * * * *", namespace=NS)
        multi = api.create_scheduled_job(image=IMAGE, command=slow, schedule="* * * * *", concurrency=True,
                                         namespace=NS)
        try:
            wait_for(lambda: runs_of(api, single.id), "the first run")
            first_next = api.inspect_scheduled_job(scheduled_job_id=single.id, namespace=NS).status.next_job_run_at

            def three_more_minutes() -> bool:
                info = api.inspect_scheduled_job(scheduled_job_id=single.id, namespace=NS)
                return (info.status.next_job_run_at - first_next).total_seconds() >= 180

            wait_for(three_more_minutes, "three more fire times passed")
            assert len(runs_of(api, single.id)) == 1  # its run still goes: those fire times were skipped
            wait_for(lambda: len(runs_of(api, multi.id)) >= 3, "overlapping runs of the concurrent one")
        finally:
            for job in api.list_jobs(namespace=NS):
                api.cancel_job(job_id=job.id, namespace=NS)


def test_scheduled_jobs_survive_a_restart_and_the_scheduler_stops_with_the_sandbox(tmp_path):
    def schedulers() -> int:
        return sum(thread.name == "hfjob-scheduler" for thread in threading.enumerate())

    before = schedulers()
    with Sandbox(data_dir=tmp_path) as sb:
        assert schedulers() == before + 1
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        made = api.create_scheduled_job(image=IMAGE, command=["python", "-c", "import os; print(os.environ['K'])"],
                                        schedule="@weekly", secrets={"K": "kept"}, suspend=True, namespace=NS)
    assert schedulers() == before
    with Sandbox(data_dir=tmp_path) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        again = api.inspect_scheduled_job(scheduled_job_id=made.id, namespace=NS)
        assert (again.schedule, again.suspend, again.job_spec.secrets) == ("@weekly", True, {"K": SECRET_MASK})
        job = api.trigger_scheduled_job(scheduled_job_id=made.id, namespace=NS)
        api.wait_for_job(job.id, namespace=NS, poll_interval=0.1, timeout=60)
        assert "kept" in list(api.fetch_job_logs(job_id=job.id, namespace=NS))
    secrets_file = next(tmp_path.glob(f"scheduled-jobs/{made.id}/secrets.json"))
    assert secrets_file.stat().st_mode & 0o077 == 0  # readable by the owner only


@pytest.fixture
def hf(sandbox, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": sandbox.endpoint, "HF_TOKEN": sandbox.token,
           "HF_HOME": str(tmp_path / "hf-home"), "NO_COLOR": "1", "HF_HUB_DISABLE_EXPERIMENTAL_WARNING": "1"}

    def call(*args: str, ok: bool = True) -> str:
        done = subprocess.run([str(HF_BIN), "jobs", "scheduled", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        return done.stdout + done.stderr

    return call


def test_hf_jobs_scheduled_cli(hf, api, unique_name):
    created = hf("run", "@daily", IMAGE, "python", "-c", "print('from the cli')", "--namespace", NS,
                 "--label", f"team={unique_name}")
    sid = re.search(r"id: ([0-9a-f]{24})", created).group(1)
    ref = f"{NS}/{sid}"
    assert sid in hf("ls", "--namespace", NS, "--label", f"team={unique_name}", "--format", "json")
    assert '"schedule": "@daily"' in hf("inspect", ref, "--format", "json")
    hf("suspend", ref)
    assert sid not in hf("ls", "--namespace", NS, "--format", "json")  # suspended ones are hidden by default
    assert sid in hf("ls", "-a", "--namespace", NS, "--format", "json")
    hf("resume", ref)
    assert "*/5 * * * *" in hf("reschedule", ref, "*/5 * * * *")
    assert "five cron fields" in hf("reschedule", ref, "61 * * * *", ok=False)
    triggered = re.search(r"id: ([0-9a-f]{24})", hf("trigger", ref)).group(1)
    assert api.wait_for_job(triggered, namespace=NS, poll_interval=0.1, timeout=60).status.stage == "COMPLETED"
    hf("labels", ref, "--name", "renamed")
    labels = api.inspect_scheduled_job(scheduled_job_id=sid, namespace=NS).job_spec.labels
    assert labels == {"team": unique_name, "name": "renamed"}
    uv = hf("uv", "run", "@hourly", "--suspend", "--namespace", NS, "python", "-c", "print(1)")
    uv_id = re.search(r"id: ([0-9a-f]{24})", uv).group(1)
    assert api.inspect_scheduled_job(scheduled_job_id=uv_id, namespace=NS).suspend is True
    hf("delete", ref)
    assert "not found" in hf("inspect", ref, ok=False).lower()

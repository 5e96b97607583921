"""Following real jobs on the sandbox: no line lost or repeated, secrets masked, retries without duplicates."""

from __future__ import annotations

import queue

import pytest

from hfjobs_magic.jobs.record import JobRecord, Update, apply_job_info
from hfjobs_magic.jobs.watch import JobWatch, Pacing
from hfjobs_magic.remote.hub import SUBMIT_LABEL, HubClient, Submission


def submit(client: HubClient, code: str, secrets: dict[str, str] | None = None, timeout: int = 120,
           dependencies: str = ""):
    script = f"# /// script\n# requires-python = '>=3.10'\n# dependencies = [{dependencies}]\n# ///\n{code}\n"
    return client.submit(Submission(namespace="alice", script=script, image="uv", flavor="cpu-basic",
                                    timeout_seconds=timeout, env={"PYTHONUNBUFFERED": "1"},
                                    secrets=secrets or {}, labels={"test": "watch"}))


def follow(client: HubClient, info, secrets=(), pacing: Pacing | None = None) -> tuple[JobRecord, list[Update]]:
    record = JobRecord(id=info.id, namespace="alice", url=info.url, flavor="cpu-basic", usd_per_hour=0.01)
    apply_job_info(record, info)
    updates: queue.Queue[Update] = queue.Queue()
    watch = JobWatch(client, record, updates.put, secrets=list(secrets), pacing=pacing).start()
    assert watch.join(timeout=120)
    return record, list(updates.queue)


def lines_of(updates: list[Update]) -> list[str]:
    return [line for u in updates for line in u.lines]


def test_many_lines_arrive_in_order_in_few_updates(sandbox):
    client = HubClient(sandbox.endpoint, sandbox.token)
    info = submit(client, "for i in range(200_000):\n    print(i)")
    # One view update per period: with a period longer than any test, the first update and the final one only,
    # however fast or slow this machine is.
    record, updates = follow(client, info, pacing=Pacing(emit_every=3600))
    numbers = [line for line in lines_of(updates) if line.isdigit()]
    assert numbers == [str(i) for i in range(200_000)]
    assert record.stage == "COMPLETED" and updates[-1].final
    assert len(updates) == 2 and not updates[0].final
    assert len(updates[-1].record["log_tail"]) == record.tail_lines


def test_secret_values_and_pieces_are_masked(sandbox):
    client = HubClient(sandbox.endpoint, sandbox.token)
    secret = "s3cr3t-value-that-must-not-leak"
    code = "import os\nv = os.environ['MY_SECRET']\nprint('whole', v)\nprint('piece', v[2:14])"
    info = submit(client, code, secrets={"MY_SECRET": secret})
    record, updates = follow(client, info, secrets=[secret])
    text = "\n".join(lines_of(updates)) + str(updates[-1].record)
    assert secret not in text and secret[2:14] not in text
    assert "whole ***" in text and "piece ***" in text


def test_transient_errors_while_following_do_not_stop_the_watch(fresh_sandbox):
    client = HubClient(fresh_sandbox.endpoint, fresh_sandbox.token)
    info = submit(client, "import time\nfor i in range(5):\n    print(i)\n    time.sleep(0.2)")
    fresh_sandbox.faults.fail_next(3, status=502, path_prefix=f"/api/jobs/alice/{info.id}")
    record, updates = follow(client, info)
    assert record.stage == "COMPLETED"
    assert [line for line in lines_of(updates) if line.isdigit()] == ["0", "1", "2", "3", "4"]
    assert fresh_sandbox.faults.injected == 3


def test_a_lost_answer_to_submission_does_not_create_the_job_twice(fresh_sandbox):
    client = HubClient(fresh_sandbox.endpoint, fresh_sandbox.token)
    fresh_sandbox.faults.fail_next(1, status=504, path_prefix="/api/jobs/alice", after_handling=True)
    info = submit(client, "print('once')")
    jobs = client.list_jobs("alice")
    assert [j.id for j in jobs] == [info.id]
    assert SUBMIT_LABEL in (jobs[0].labels or {})


def test_submission_refused_for_good_is_not_retried(fresh_sandbox):
    """A 403 is final: one request reaches the sandbox, and no job exists (a 503 would be retried)."""
    from huggingface_hub.errors import HfHubHTTPError

    client = HubClient(fresh_sandbox.endpoint, fresh_sandbox.token)
    fresh_sandbox.faults.fail_next(5, status=403, path_prefix="/api/jobs/alice")
    with pytest.raises(HfHubHTTPError) as err:
        submit(client, "print(1)")
    assert err.value.response.status_code == 403
    assert fresh_sandbox.faults.injected == 1 and fresh_sandbox.faults.plan.fail_next == 4
    fresh_sandbox.faults.clear()
    assert client.list_jobs("alice") == []

    fresh_sandbox.faults.fail_next(2, status=503, path_prefix="/api/jobs/alice")
    info = submit(client, "print(1)")  # transient: retried (each retry first looks for a job it made)
    assert fresh_sandbox.faults.injected == 3
    assert [j.id for j in client.list_jobs("alice")] == [info.id]


def test_a_silent_job_still_updates_its_stage_and_an_outage_is_said(fresh_sandbox, tmp_path):
    """The job prints nothing and runs until the view has shown both, then the Hub answers again."""
    go_on = tmp_path / "go-on"
    client = HubClient(fresh_sandbox.endpoint, fresh_sandbox.token)
    info = submit(client, f"import os, time\nwhile not os.path.exists({str(go_on)!r}):\n    time.sleep(0.1)")
    fresh_sandbox.faults.fail_next(4, status=503, path_prefix=f"/api/jobs/alice/{info.id}")
    seen: list[Update] = []

    def on_update(update: Update) -> None:
        seen.append(update)
        said = any("no answer from the Hub" in (u.record["message"] or "") for u in seen)
        if said and any(u.record["stage"] == "RUNNING" and not u.lines for u in seen):
            go_on.touch()

    record = JobRecord(id=info.id, namespace="alice", url=info.url, flavor="cpu-basic", usd_per_hour=0.01)
    apply_job_info(record, info)
    assert JobWatch(client, record, on_update).start().join(timeout=240)
    assert go_on.exists(), "a silent job must still show it is running, and an outage must be said"
    assert record.stage == "COMPLETED"
    assert seen[-1].record["message"] is None  # the outage notice goes once the Hub answers


def test_the_end_of_the_log_stream_ends_the_watch_without_waiting_for_a_poll(sandbox, unique_name):
    """Stage polls an hour apart: only the stream's end can trigger the final poll and push verification."""
    from hfjobs_magic.jobs.record import PushTarget
    from hfjobs_magic.jobs.watch import Pacing

    client = HubClient(sandbox.endpoint, sandbox.token)
    repo = f"alice/{unique_name}"
    code = ("from huggingface_hub import HfApi\napi = HfApi()\n"
            f"api.create_repo({repo!r}, exist_ok=True)\n"
            f"api.upload_file(path_or_fileobj=b'x', path_in_repo='x.txt', repo_id={repo!r})\nprint('pushed')")
    info = submit(client, code, secrets={"HF_TOKEN": sandbox.token}, dependencies="'huggingface_hub'")
    record = JobRecord(id=info.id, namespace="alice", url=info.url, flavor="cpu-basic", usd_per_hour=0.01)
    apply_job_info(record, info)
    record.push.append(PushTarget(repo, "model"))
    hour = Pacing(poll_first=3600, poll_max=3600, push_every=3600, log_grace=3600, heartbeat=3600)
    updates: queue.Queue[Update] = queue.Queue()
    watch = JobWatch(client, record, updates.put, pacing=hour).start()
    assert watch.join(timeout=120), "the watch waited for the next stage poll instead of the stream's end"
    assert record.stage == "COMPLETED" and "pushed" in lines_of(list(updates.queue)), record.log_tail
    assert record.push[0].verified and len(record.push[0].commits) == 1


def test_stream_retries_wait_longer_each_time_and_short_again_after_progress():
    """A reader that got lines before its stream dropped reconnects at once, not after the last outage's wait."""
    import threading

    from hfjobs_magic.remote.hub import retry_transient

    waits: list[float | None] = []

    class RecordingStop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout)
            return False

    outcomes = iter([ConnectionError("reset"), ConnectionError("reset"), ConnectionError("reset"), None])
    progressed = iter([False, False, True])

    def attempt() -> None:
        if (err := next(outcomes)) is not None:
            raise err

    assert retry_transient(RecordingStop(), attempt, made_progress=lambda: next(progressed)) is None
    assert waits == [1.0, 2.0, 1.0]
    refused = ValueError("not worth a retry")
    assert retry_transient(RecordingStop(), lambda: (_ for _ in ()).throw(refused)) is refused
    assert waits == [1.0, 2.0, 1.0]  # no wait before giving up on what is not transient

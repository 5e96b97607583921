"""Operating jobs from the notebook: progress bars, metrics, the idle-GPU guard, the queue notice, schedules.

Notebooks executed by nbclient in a real kernel against a real sandbox; the sandbox's knobs
(`gpu_utilization`, `hold_scheduling`) stand in for a GPU and a full queue.
"""

from __future__ import annotations

import threading

import nbformat
from huggingface_hub import HfApi
from nbclient import NotebookClient

from hfjobs_magic.jobs.progress import bar_of
from hfjobs_magic.remote.hub import JOB_COMMAND, SCRIPT_ENV
from hfjobs_magic.sandbox import Sandbox
from tests.nbrun import environ, execute, final_record, sandbox_env, text_of
from tests.polling import wait_for

LOAD = "%load_ext hfjobs_magic"
QUIET = "--allow-no-push --timeout 5m --yes"



def test_a_tqdm_bar_is_one_line_and_completed_comes_after_the_last_line(sandbox, tmp_path):
    cell = (f"%%hfjob {QUIET}\nimport time\nfrom tqdm import tqdm\nprint('before the bar')\n"
            "for i in tqdm(range(400), mininterval=0):\n    time.sleep(0.002)\nprint('after the bar')")
    last_job = "import json, os\njob = json.loads(open(os.environ['HFJOB_HISTORY']).read().splitlines()[-1])['id']"
    nb, err = execute([LOAD, cell, last_job, "%hfjob_logs $job"], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    logs = text_of(nb.cells[3]).splitlines()
    assert len([line for line in logs if bar_of(line)]) <= 2 and logs[-1] == "after the bar", logs
    record = final_record(nb.cells[1])
    bars = [line for line in record["log_tail"] if bar_of(line)]
    assert 1 <= len(bars) <= 2, record["log_tail"]
    assert "400/400" in bars[-1]
    assert record["log_tail"][-1] == "after the bar"
    assert record["log_tail"].index("before the bar") < record["log_tail"].index(bars[0])
    out = text_of(nb.cells[1])
    assert out.index("after the bar") < out.index("is COMPLETED") < out.index("ended COMPLETED")


def test_a_busy_job_leaves_its_metrics_in_the_record(sandbox, tmp_path):
    cell = f"%%hfjob {QUIET}\nimport time\nend = time.time() + 6\nwhile time.time() < end:\n    sum(range(10_000))"
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    metrics = final_record(nb.cells[1])["metrics"]  # of the flavor's 2 vCPUs; an idle job shows ~0
    assert metrics["peak"]["cpu_pct"] > 5 and metrics["memory_bytes"] > 1_000_000
    assert metrics["memory_total_bytes"] >= metrics["memory_bytes"]
    assert "gpu_util_pct" not in metrics and "idle_gpu_s" not in metrics  # cpu-basic has no GPU
    assert "[hfjob] metrics: CPU" in text_of(nb.cells[1])


def test_cancel_if_idle_cancels_a_gpu_job_whose_gpu_idles_and_says_why(sandbox, tmp_path):
    sandbox.faults.set(gpu_utilization=0)
    cells = [LOAD, "%config HFJobMagics.idle_gpu_warn = '1s'",
             "%%hfjob --flavor t4-small --allow-no-push --timeout 5m --yes --cancel-if-idle 2s\n"
             "import time\nprint('holding the GPU', flush=True)\ntime.sleep(120)"]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "HfJobFailed"
    assert "cancelled because the GPU was idle for" in err.evalue
    record = final_record(nb.cells[2])
    assert record["stage"] == "CANCELED" and "GPU was idle for" in record["message"]
    assert record["metrics"]["gpu_util_pct"] == 0 and record["metrics"]["idle_gpu_s"] >= 2
    out = text_of(nb.cells[2])
    assert out.count("NOTICE: The GPU has been idle") == 1 and "spent on an idle GPU" in out


def test_a_job_waiting_for_hardware_gets_one_notice(sandbox, tmp_path):
    sandbox.faults.set(hold_scheduling=True)
    cells = [LOAD, "%config HFJobMagics.queue_wait_warn = '1s'", f"%%hfjob {QUIET}\nprint('finally running')"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with environ(**sandbox_env(sandbox, tmp_path)):
        runner = threading.Thread(target=client.execute, daemon=True)
        runner.start()
        wait_for(lambda: "NOTICE: Waiting for hardware for" in text_of(nb.cells[2]), "the queue notice")
        sandbox.faults.set(hold_scheduling=False)
        runner.join(240)
    out = text_of(nb.cells[2])
    assert out.count("NOTICE: Waiting for hardware for") == 1
    assert "%hfjob_cancel" in out and "another flavor" in out
    assert out.index("NOTICE: Waiting") < out.index("finally running") < out.index("is COMPLETED")
    assert final_record(nb.cells[2])["stage"] == "COMPLETED"


def test_schedule_a_cell_list_it_and_unschedule_it(tmp_path):
    with Sandbox(schedule_time_scale=60) as sb:  # at 60x, `* * * * *` fires every second
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        env = sandbox_env(sb, tmp_path)
        cell = "%%hfjob --schedule '* * * * *' --flavor cpu-upgrade --timeout 2m --allow-no-push --yes\nprint('a run')"
        nb, err = execute([LOAD, cell], env, tmp_path / "a.ipynb")
        assert err is None, err
        record = final_record(nb.cells[1])
        assert record["stage"] == "SCHEDULED" and record["schedule"]["schedule"] == "* * * * *"
        assert len(record["schedule"]["next_runs"]) == 3
        out = text_of(nb.cells[1])
        assert "] schedule: * * * * *: next runs" in out and "/month" in out and "%hfjob_unschedule" in out
        made = api.inspect_scheduled_job(scheduled_job_id=record["id"], namespace=sb.user)
        assert made.job_spec.flavor == "cpu-upgrade" and "HF_TOKEN" in (made.job_spec.secrets or {})
        assert made.job_spec.command == JOB_COMMAND and "print('a run')" in made.job_spec.environment[SCRIPT_ENV]
        wait_for(lambda: api.inspect_scheduled_job(scheduled_job_id=record["id"], namespace=sb.user).status.last_job,
                    "a run fired by the schedule")
        nb, err = execute([LOAD, "%hfjob_ps --scheduled", f"%hfjob_unschedule {record['id']}",
                           "%hfjob_ps --scheduled", "%hfjob_unschedule nosuchid"], env, tmp_path / "b.ipynb",
                          allow_errors=True)
        listed = text_of(nb.cells[1])
        assert record["id"] in listed and "* * * * *" in listed and "active" in listed
        assert any(line.startswith(record["id"]) and "ago" in line for line in listed.splitlines()), listed
        assert "deleted" in text_of(nb.cells[2])
        assert record["id"] not in text_of(nb.cells[3])
        assert "HfJobHubError" in text_of(nb.cells[4]) and "no scheduled job nosuchid" in text_of(nb.cells[4])
        assert api.list_scheduled_jobs(namespace=sb.user) == []


def test_schedule_needs_consent_and_a_valid_expression(sandbox, tmp_path):
    cells = [LOAD, "%%hfjob --schedule @daily --allow-no-push --timeout 1m\nprint(1)",
             "%%hfjob --schedule '61 * * * *' --allow-no-push --timeout 1m --yes\nprint(1)",
             "%%hfjob --schedule @nightly --allow-no-push --timeout 1m --dry-run\nprint(1)"]
    nb, _ = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb", allow_errors=True)
    assert "HfJobNotConfirmed" in text_of(nb.cells[1])
    assert "HfJobCheckError" in text_of(nb.cells[2]) and "(schedule)" in text_of(nb.cells[2])
    assert "[FAIL] schedule: unknown schedule '@nightly'" in text_of(nb.cells[3])
    assert HfApi(endpoint=sandbox.endpoint, token=sandbox.token).list_scheduled_jobs(namespace=sandbox.user) == []


def test_a_cancel_if_idle_that_is_refused_is_said_not_retried(sandbox):
    from hfjobs_magic.jobs.guards import Guards
    from hfjobs_magic.jobs.record import JobRecord, apply_job_info
    from hfjobs_magic.jobs.watch import JobWatch
    from hfjobs_magic.remote.hub import HubClient, Submission

    sandbox.faults.set(gpu_utilization=0)
    owner = HubClient(sandbox.endpoint, sandbox.token)
    script = "# /// script\n# requires-python = '>=3.10'\n# dependencies = []\n# ///\nimport time\ntime.sleep(120)\n"
    info = owner.submit(Submission(namespace=sandbox.user, script=script, image="uv", flavor="t4-small",
                                   timeout_seconds=300, env={}, secrets={}, labels={"test": "idle"}))
    record = JobRecord(id=info.id, namespace=sandbox.user, url=info.url, flavor="t4-small")
    apply_job_info(record, info)
    seen: list = []
    reader = HubClient(sandbox.endpoint, sandbox.read_token)  # may follow the job, may not cancel it
    watch = JobWatch(reader, record, seen.append, guards=Guards(cancel_if_idle_s=1)).start()
    try:
        notice = wait_for(lambda: next((n["text"] for u in list(seen) for n in u.record["notices"]
                                    if "could not cancel" in n["text"]), None), "the refused cancel said")
        assert "403" in notice and "cancel it yourself" in notice, notice
    finally:
        owner.cancel(info.id, sandbox.user)
    assert watch.join(timeout=60)
    assert record.stage == "CANCELED" and "GPU was idle" not in (record.message or "")

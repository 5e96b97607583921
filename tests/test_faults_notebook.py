"""Faults and load, notebook side: the real magic in a real kernel (nbclient) against a sandbox that misbehaves.

A job here prints numbered lines until the test creates its stop file, so the test acts on
conditions (the job is running, the view has caught up), never on durations. Whatever goes
wrong on the way, the cell's output must hold every line exactly once, in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.util import run_sync

from hfjobs_magic.sandbox import Sandbox
from tests.nbrun import environ, execute, final_record, sandbox_env, text_of
from tests.polling import wait_for

LOAD = "%load_ext hfjobs_magic"
QUIET = "--allow-no-push --timeout 5m --yes"
DEADLINE_S = 120.0
OUTAGE_S = 30.0



def counting_job(stop: Path, tag: str = "line", every: float = 0.1, flags: str = QUIET, ticks: int = 0) -> str:
    """A cell whose job prints `tag-0`, `tag-1`, ... until `stop` exists, then `tag-end` (and `ticks` lines
    `tick`: a log ending in identical lines, where a cut stream cannot be told from the end by its last line)."""
    return (f"%%hfjob {flags}\nimport os, time\ni = 0\nwhile not os.path.exists({str(stop)!r}):\n"
            f"    print(f'{tag}-{{i}}', flush=True)\n    i += 1\n    time.sleep({every})\n"
            f"print('{tag}-end', flush=True)\nfor _ in range({ticks}):\n    print('tick', flush=True)")


def numbered(text: str, tag: str = "line") -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"{tag}-")]


def assert_complete(text: str, tag: str = "line", at_least: int = 1) -> list[str]:
    """The job's lines in `text`: `tag-0` .. `tag-N` then `tag-end`, none lost, none repeated."""
    lines = numbered(text, tag)
    count = len(lines) - 1
    assert count >= at_least, f"only {count} numbered lines:\n{text[-3000:]}"
    assert lines == [f"{tag}-{i}" for i in range(count)] + [f"{tag}-end"], text[-3000:]
    return lines


def the_job(sb: Sandbox) -> Any:
    """The sandbox's one job (in-process: the Hub may be down on purpose)."""
    jobs = sb.jobs.list(sb.user, set(), [])
    return jobs[0] if len(jobs) == 1 else None


def job_lines(sb: Sandbox, job: Any) -> list[str]:
    """What the job has printed so far, read from the sandbox's own log."""
    return [json.loads(event[len(b"data: "):])["data"] for event in list(sb.jobs.book(job).events)]


def assert_record_matches_the_log(record: dict, sb: Sandbox) -> None:
    """The record counts every line the job printed once, and its tail is the log's own tail."""
    printed = job_lines(sb, the_job(sb))
    assert record["log_lines"] == len(printed)
    assert record["log_tail"] == printed[-len(record["log_tail"]):]


def shown(cell: Any) -> set[str]:
    """The lines a cell has printed so far (it may still be running)."""
    return set(text_of(cell).splitlines())


class Kernel:
    """One real kernel running cells one at a time, so a test can act between (and, from a thread, during) cells."""

    def __init__(self, env: dict[str, str], path: Path) -> None:
        self.nb = nbformat.v4.new_notebook()
        self.client = NotebookClient(self.nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
        self.env, self.path = env, path

    @contextmanager
    def running(self) -> Iterator[Kernel]:
        with environ(**self.env), self.client.setup_kernel():
            try:
                yield self
            finally:
                nbformat.write(self.nb, str(self.path))

    def add(self, source: str) -> Any:
        self.nb.cells.append(nbformat.v4.new_code_cell(source))
        return self.nb.cells[-1]

    def run(self, cell: Any) -> Any:
        self.client.execute_cell(cell, self.nb.cells.index(cell))
        return cell

    def restart(self) -> None:
        run_sync(self.client.km.restart_kernel)(now=True)
        run_sync(self.client.kc.wait_for_ready)(timeout=60)


@contextmanager
def driving(stop: Path, act: Callable[[], Any]) -> Iterator[Future]:
    """Run `act` beside the cell the test executes; the job's stop file is made whatever happens."""
    def guarded() -> Any:
        try:
            return act()
        finally:
            stop.touch()

    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(guarded)


def test_a_hub_outage_mid_job_is_said_once_and_loses_no_line(fresh_sandbox, tmp_path):
    sb, stop = fresh_sandbox, tmp_path / "stop"
    kernel = Kernel(sandbox_env(sb, tmp_path), tmp_path / "outage.ipynb")
    during: dict[str, int] = {}

    def act() -> None:
        job = wait_for(lambda: the_job(sb), "the job")
        wait_for(lambda: len(job_lines(sb, job)) >= 10, "the job's first lines")
        wait_for(lambda: {"line-5"} <= shown(cell), "the view showing the job's lines")
        before = len(job_lines(sb, job))
        sb.faults.set(outage=OUTAGE_S)
        wait_for(lambda: "no answer from the Hub" in text_of(cell), "the view saying the Hub is down")
        sb.faults.set(status=502)  # the rest of the outage answers otherwise, as a load balancer may: still one line
        wait_for(lambda: not sb.faults.in_outage(), "the outage to end", deadline_s=OUTAGE_S + DEADLINE_S)
        printed = job_lines(sb, job)
        during["lines"] = len(printed) - before
        last = [line for line in printed if line.startswith("line-")][-1]
        wait_for(lambda: {last} <= shown(cell), f"the view catching up to {last} while the job runs")

    with kernel.running():
        kernel.run(kernel.add(LOAD))
        cell = kernel.add(counting_job(stop, every=0.15))
        with driving(stop, act) as acting:
            kernel.run(cell)
        acting.result()
    out = text_of(cell)
    assert during["lines"] >= 20, "the job must keep printing while the Hub is down"
    assert sb.faults.injected > 0
    assert out.count("no answer from the Hub") == 1, out
    assert_complete(out, at_least=during["lines"])
    record = final_record(cell)
    assert record["stage"] == "COMPLETED" and not record["message"]
    assert_record_matches_the_log(record, sb)


def test_a_log_stream_cut_again_and_again_loses_no_line(fresh_sandbox, tmp_path):
    sb, stop = fresh_sandbox, tmp_path / "stop"
    sb.faults.set(drop_logs_every=5)
    kernel = Kernel(sandbox_env(sb, tmp_path), tmp_path / "cuts.ipynb")

    def act() -> None:
        job = wait_for(lambda: the_job(sb), "the job")
        wait_for(lambda: sb.faults.injected >= 6, "six cut log streams")
        last = job_lines(sb, job)[-1]
        wait_for(lambda: {last} <= shown(cell), f"the view reaching {last} while the job runs")

    with kernel.running():
        kernel.run(kernel.add(LOAD))
        cell = kernel.add(counting_job(stop, ticks=40))
        with driving(stop, act) as acting:
            kernel.run(cell)
        acting.result()
    out = text_of(cell)
    assert_complete(out, at_least=30)
    after = out.splitlines()[out.splitlines().index("line-end") + 1:]
    assert after[:40] == ["tick"] * 40 and after.count("tick") == 40, out[-2000:]
    assert final_record(cell)["stage"] == "COMPLETED"
    assert_record_matches_the_log(final_record(cell), sb)


def test_attach_after_a_kernel_restart_follows_to_the_end(fresh_sandbox, tmp_path):
    sb, stop = fresh_sandbox, tmp_path / "stop"
    kernel = Kernel(sandbox_env(sb, tmp_path), tmp_path / "restart.ipynb")

    def act() -> None:
        wait_for(lambda: {"line-3"} <= shown(attach) and "is RUNNING" in text_of(attach),
                 "the attached view following the running job")

    with kernel.running():
        kernel.run(kernel.add(f"{LOAD}\nbefore_restart = 1"))
        detached = kernel.run(kernel.add(counting_job(stop, flags=f"{QUIET} --detach")))
        job_id = final_record(detached)["id"]
        job = wait_for(lambda: the_job(sb), "the job")
        wait_for(lambda: len(job_lines(sb, job)) >= 5, "the job printing")
        kernel.restart()
        fresh = kernel.run(kernel.add(f"{LOAD}\nprint('survived', 'before_restart' in globals())"))
        attach = kernel.add(f"%hfjob_attach {job_id}")
        with driving(stop, act) as acting:
            kernel.run(attach)
        acting.result()
        sb.faults.drop_logs_after(7)  # the ended job's log, replayed again, is cut short
        again = kernel.run(kernel.add(f"%hfjob_attach {job_id}"))
    assert "survived False" in text_of(fresh), "the kernel must really have restarted"
    assert sb.faults.injected == 1 and assert_complete(text_of(again)) == numbered(text_of(attach))
    out = text_of(attach)
    assert out.index("is RUNNING") < out.index("line-end")
    assert_complete(out, at_least=5)
    record = final_record(attach)
    assert record["id"] == job_id and record["stage"] == "COMPLETED"
    assert_record_matches_the_log(record, sb)


def test_ten_detached_cells_at_once_each_keep_their_own_log(fresh_sandbox, tmp_path):
    sb, env = fresh_sandbox, sandbox_env(fresh_sandbox, tmp_path)
    cells = [f"%%hfjob {QUIET} --detach\nfor i in range(20):\n    print(f'job{k}-{{i}}', flush=True)"
             for k in range(10)]
    nb, err = execute([LOAD, *cells, "%hfjob_ps"], env, tmp_path / "ten.ipynb")
    assert err is None, err
    ids = [final_record(cell)["id"] for cell in nb.cells[1:11]]
    assert len(set(ids)) == 10
    listed = text_of(nb.cells[11])
    assert all(job_id in listed for job_id in ids), listed
    history = [json.loads(line)["id"] for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert sorted(history) == sorted(ids), "each submission is in the history once"
    wait_for(lambda: all(sb.jobs.get(sb.user, j).stage == "COMPLETED" for j in ids), "all ten jobs to complete")

    sb.faults.drop_logs_after(7)  # the first log read is cut short: %hfjob_logs must still print it whole
    nb, err = execute([LOAD, *(f"%hfjob_logs {job_id}" for job_id in ids), "%hfjob_ps"], env,
                      tmp_path / "ten-logs.ipynb")
    assert err is None, err
    assert sb.faults.injected == 1
    for k, cell in enumerate(nb.cells[1:11]):
        printed = [line for line in text_of(cell).splitlines() if line.startswith("job")]
        assert printed == [f"job{k}-{i}" for i in range(20)], text_of(cell)
    rows = [line for line in text_of(nb.cells[11]).splitlines() if line.partition(" ")[0] in ids]
    assert len(rows) == 10 and all(" COMPLETED " in row for row in rows), rows
    assert len({row.split()[-1] for row in rows}) == 10, "each job names its own cell"


def test_an_outage_answers_503_everywhere_until_it_ends(fresh_sandbox):
    """The outage knob on its own: every route answers 503 while it lasts, then all is well again."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=fresh_sandbox.endpoint, token=fresh_sandbox.token)
    fresh_sandbox.faults.set(outage=60)
    for call in (api.whoami, lambda: api.inspect_job(job_id="0" * 24, namespace=fresh_sandbox.user)):
        try:
            call()
        except HfHubHTTPError as err:
            assert err.response.status_code == 503
        else:
            raise AssertionError("an outage must answer 503")
    fresh_sandbox.faults.set(outage=0)
    assert not fresh_sandbox.faults.in_outage()
    assert api.whoami()["name"] == fresh_sandbox.user


def test_a_cut_stream_of_a_finished_job_ending_in_identical_lines_is_caught_up(fresh_sandbox):
    """In process, deterministic: the job has ended before it is followed, so the client ends the cut stream
    at once; its last line equals ours, and only the log's length tells that lines are missing."""
    from hfjobs_magic.remote.hub import HubClient
    from tests.test_watch import follow, lines_of, submit

    client = HubClient(fresh_sandbox.endpoint, fresh_sandbox.token)
    info = submit(client, "for i in range(30):\n    print('tick')")
    wait_for(lambda: fresh_sandbox.jobs.get(fresh_sandbox.user, info.id).stage == "COMPLETED", "the job to end")
    fresh_sandbox.faults.drop_logs_after(7)
    record, updates = follow(client, info)
    assert fresh_sandbox.faults.injected == 1
    assert lines_of(updates).count("tick") == 30
    assert_record_matches_the_log(record.as_json(), fresh_sandbox)


def test_a_failed_last_push_check_never_says_the_results_are_lost(fresh_sandbox, tmp_path):
    """In process: a check found nothing yet, then the results land, then the storage stops answering (403,
    so no retry hides it). The record must say "not verified", never "nothing was pushed"."""
    import queue

    from huggingface_hub import HfApi

    from hfjobs_magic.jobs.record import JobRecord, PushTarget, apply_job_info, unpushed
    from hfjobs_magic.jobs.watch import JobWatch, Pacing
    from hfjobs_magic.remote.hub import HubClient
    from tests.test_watch import submit

    sb, stop, repo = fresh_sandbox, tmp_path / "stop", "alice/faults-late-push"
    api = HfApi(endpoint=sb.endpoint, token=sb.token)
    api.create_repo(repo, repo_type="dataset")
    client = HubClient(sb.endpoint, sb.token)
    info = submit(client, f"import os, time\nwhile not os.path.exists({str(stop)!r}):\n    time.sleep(0.05)")
    record = JobRecord(id=info.id, namespace=sb.user, url=info.url, flavor="cpu-basic", usd_per_hour=0.01,
                       push=[PushTarget(repo, "dataset")])
    apply_job_info(record, info)
    watch = JobWatch(client, record, queue.Queue().put, pacing=Pacing(push_every=0.2)).start()
    try:
        wait_for(lambda: record.push[0].checked, "a first push check, finding nothing")
        sb.faults.fail_next(10_000, status=403, path_prefix=f"/api/datasets/{repo}/commits")
        api.upload_file(path_or_fileobj=b"results", path_in_repo="r.txt", repo_id=repo, repo_type="dataset")
    finally:
        stop.touch()
    assert watch.join(timeout=DEADLINE_S)
    final = record.as_json()
    assert final["stage"] == "COMPLETED" and final["push"][0]["check_error"], final["push"]
    assert final["push"][0]["checked"] and not final["push"][0]["commits"]  # what the first check saw, now stale
    assert unpushed(final) == [], "an unanswered check is no proof that nothing landed"

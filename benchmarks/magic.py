"""Benchmarks of the magic (issue 3); prints figures and ratios measured in one run.

1. `%load_ext hfjobs_magic` next to starting IPython (target: adds < 25 %).
2. Cell start to job submitted, against the sandbox, next to the `hf` CLI submitting the same
   script (`hf jobs run --detach`; `hf jobs uv run` uploads local scripts to a bucket, which the
   sandbox does not serve). Target: the magic is faster.
3. A job printing 200,000 lines followed by the magic (headless) next to a plain
   `for line in fetch_job_logs(follow=True): print(line)` loop in the same kernel, with the
   saved output size of each. Targets: within 1.5x of the plain loop, under 1 MB saved.

Run: .venv/bin/python benchmarks/magic.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from hfjobs_magic.remote.hub import JOB_COMMAND, SCRIPT_ENV
from hfjobs_magic.sandbox import Sandbox

BIN = Path(sys.executable).parent
IPYTHON_START = "from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance()"
LINES = 200_000


def median_seconds(args: list[str], runs: int = 5, env: dict | None = None) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_load_ext() -> None:
    bare = median_seconds([sys.executable, "-c", IPYTHON_START])
    loaded = median_seconds([sys.executable, "-c", IPYTHON_START + "; ip.run_line_magic('load_ext', 'hfjobs_magic')"])
    print(f"IPython start                          {bare * 1000:7.0f} ms")
    print(f"IPython start + %load_ext hfjobs_magic {loaded * 1000:7.0f} ms   "
          f"adds {(loaded - bare) / bare:+.0%} (target < +25%)")


def execute(cells: list[str], env: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def cell_seconds(cell: nbformat.NotebookNode) -> float:
    """Cell run time from the timestamps nbclient records."""
    from datetime import datetime

    meta = cell.metadata["execution"]
    start = datetime.fromisoformat(meta["iopub.execute_input"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(meta["shell.execute_reply"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def bench_submission(sb: Sandbox, env: dict[str, str]) -> None:
    nb = execute(["%load_ext hfjobs_magic", "%%hfjob --yes --detach --allow-no-push --timeout 5m\nprint('hi')"], env)
    magic = cell_seconds(nb.cells[1])
    script = "# /// script\n# dependencies = []\n# ///\nprint('hi')\n"
    cli = median_seconds([str(BIN / "hf"), "jobs", "run", "--detach", "-e", f"{SCRIPT_ENV}={script}",
                          "ghcr.io/astral-sh/uv:python3.12-bookworm", *JOB_COMMAND], runs=3,
                         env={**os.environ, **env})
    print(f"cell start -> submitted (magic, first job cell, cold imports) {magic * 1000:7.0f} ms")
    print(f"hf jobs run --detach (CLI, same script)                       {cli * 1000:7.0f} ms   "
          f"magic/CLI = {magic / cli:.2f} (target < 1)")


def bench_log_following(sb: Sandbox, env: dict[str, str]) -> None:
    job = f"for i in range({LINES}):\n    print('line', i)"
    plain = (
        "import time\nfrom huggingface_hub import HfApi\n"
        "api = HfApi()\n"
        f"info = api.run_job(image='x', command=['python', '-c', {job!r}], namespace='alice')\n"
        "for line in api.fetch_job_logs(job_id=info.id, namespace='alice', follow=True):\n    print(line)"
    )
    nb = execute(["%load_ext hfjobs_magic", f"%%hfjob --yes --allow-no-push --timeout 5m\n{job}", plain], env)
    magic_s, plain_s = cell_seconds(nb.cells[1]), cell_seconds(nb.cells[2])
    magic_kb = len(json.dumps(nb.cells[1].outputs)) / 1000
    plain_kb = len(json.dumps(nb.cells[2].outputs)) / 1000
    print(f"job printing {LINES:,} lines, followed by %%hfjob (headless) {magic_s:6.2f} s, saves {magic_kb:8.1f} kB")
    print(f"same job, plain fetch_job_logs(follow=True) print loop  {plain_s:6.2f} s, saves {plain_kb:8.1f} kB")
    print(f"  magic/plain time = {magic_s / plain_s:.2f} (target <= 1.5), magic saved output < 1 MB: "
          f"{magic_kb < 1000}")


def main() -> None:
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    bench_load_ext()
    with Sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        env = {"HF_ENDPOINT": sb.endpoint, "HF_TOKEN": sb.token, "HFJOB_HISTORY": f"{tmp}/history.jsonl"}
        bench_submission(sb, env)
        bench_log_following(sb, env)


if __name__ == "__main__":
    main()

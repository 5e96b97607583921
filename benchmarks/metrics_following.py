"""What following a job's metrics costs the kernel: CPU of a watcher with and without its metrics reader.

    .venv/bin/python benchmarks/metrics_following.py [SECONDS]

The sandbox runs in a process of its own (so its sampling is not counted); this process follows
two jobs of SECONDS (default 30) each, one with the metrics stream and one without, and prints the
extra CPU as a share of wall time. Target: under 2 %. Asserts nothing.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from hfjobs_magic.jobs.record import JobRecord  # noqa: E402
from hfjobs_magic.jobs.watch import JobWatch, Update, apply_job_info  # noqa: E402
from hfjobs_magic.remote.hub import HubClient, Submission  # noqa: E402


def start_sandbox() -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "hfjobs_magic.cli", "sandbox", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    found: dict[str, str] = {}
    while len(found) < 2:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise RuntimeError("the sandbox did not start")
        key, _, value = line.strip().partition("=")
        if key in ("HF_ENDPOINT", "HF_TOKEN"):
            found[key] = value
    return proc, found["HF_ENDPOINT"], found["HF_TOKEN"]


def follow(client: HubClient, seconds: float, with_metrics: bool) -> tuple[float, float, int]:
    """(CPU seconds of this process, wall seconds, metric samples seen) while following one job."""
    script = ("# /// script\n# requires-python = '>=3.10'\n# dependencies = []\n# ///\n"
              f"import time\nprint('start', flush=True)\ntime.sleep({seconds})\nprint('end')\n")
    info = client.submit(Submission(namespace=client.username(), script=script, image="uv", flavor="cpu-basic",
                                    timeout_seconds=int(seconds) + 120, env={"PYTHONUNBUFFERED": "1"}, secrets={},
                                    labels={"bench": "metrics"}))
    record = JobRecord(id=info.id, namespace=info.owner.name, url=info.url, flavor="cpu-basic")
    apply_job_info(record, info)
    updates: queue.Queue[Update] = queue.Queue()
    watch = JobWatch(client, record, updates.put)
    if not with_metrics:
        watch._metrics_reader = None  # the one difference between the two runs
    cpu, wall = time.process_time(), time.monotonic()
    watch.start()
    watch.join()
    return time.process_time() - cpu, time.monotonic() - wall, watch.metrics.version


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    proc, endpoint, token = start_sandbox()
    try:
        client = HubClient(endpoint, token)
        client.username()
        follow(client, 2, True)  # warm up: imports, connections
        base_cpu, base_wall, _ = follow(client, seconds, with_metrics=False)
        cpu, wall, samples = follow(client, seconds, with_metrics=True)
    finally:
        proc.terminate()
        proc.wait(10)
    extra = (cpu - base_cpu) / wall
    print(f"following a {seconds:.0f} s job, logs only:      {base_cpu:.3f} s CPU over {base_wall:.1f} s "
          f"({100 * base_cpu / base_wall:.2f} %)")
    print(f"following it with metrics ({samples} samples): {cpu:.3f} s CPU over {wall:.1f} s "
          f"({100 * cpu / wall:.2f} %)")
    print(f"metrics add {100 * extra:.2f} % CPU to the kernel (target: under 2 %)")


if __name__ == "__main__":
    main()

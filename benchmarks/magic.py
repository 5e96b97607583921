"""Benchmarks of the magic (issue 13's table); every row is a ratio measured in this one run.

In one kernel (nbclient, headless, against a sandbox on loopback):

1. a tiny job (10 lines), cell start to cell end, next to a plain `run_job` +
   `fetch_job_logs(follow=True)` print loop submitting the same command (goal: at most 1.5x);
2. a job printing 200,000 lines, the same way (goal: at most 1.1x);
3. the first job cell, cold, to "submitted" (`--detach`), next to `hf jobs run --detach` (goal: 0.5x),
   after TYPING_S seconds in which a user would type it, and (in a second kernel) run at once;
4. a second job cell in the same kernel to "submitted", next to the CLI (goal: 0.2x);

and, in fresh processes, 5. `%load_ext hfjobs_magic` over starting IPython (goal: at most +10 %), the
fastest of interleaved runs. Timed rows of the kernel are medians of a few runs (two shared cores make
single runs noisy). Bytecode is cached as in an installed package (in a private folder), even where
PYTHONDONTWRITEBYTECODE is set: otherwise our modules alone would be compiled on every start.

Where a tiny job's time went before issue 13 (profiled with cProfile and a timeline of the watcher's
threads, in-process against the sandbox): checks ~4 ms and submission ~10 ms (as the plain loop), then
the job itself, then ~100 ms of waiting after its log stream had ended: the watcher slept until its next
emit tick although the stage was final, and the final push verification ran only after that. Cold, the
first cell spent most of its time importing huggingface_hub.hf_api (~100-200 ms) and building the flags'
parser; %load_ext spent most of its own ~15 ms having argparse format the help of two dozen flags (now
plain text from cell/flags.py, under a millisecond, and the magic's docstring). Run at once after
%load_ext, the first cell waits for the warm-up's imports: about 25 ms of them were garbage collections
walking the kernel's heap (now paused while it imports), and whoami and the hardware list now go out as
soon as huggingface_hub is in, overlapping our own imports; what is left is CPU, mostly
huggingface_hub.hf_api's own import (~120 ms on two shared cores) and ~40 dataclass definitions of ours.

Run: .venv/bin/python benchmarks/magic.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from hfjobs_magic.cell.script import build_script
from hfjobs_magic.cell.spec import build_spec, parse_line
from hfjobs_magic.remote.hub import JOB_COMMAND, SCRIPT_ENV
from hfjobs_magic.sandbox import Sandbox

BIN = Path(sys.executable).parent
IPYTHON_START = "from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance()"
TINY = "for i in range(10):\n    print('line', i)"
FLOOD = "for i in range(200_000):\n    print('line', i)"
FLAGS = "--yes --allow-no-push --timeout 5m"
MAGIC = f"%%hfjob {FLAGS}"
DETACH = "%%hfjob --yes --detach --allow-no-push --timeout 5m\nprint('hi')"
REPEAT = 3
FRESH_KERNELS = 5  # the cold row's median: each kernel starts anew, and a start on shared cores varies most
LOAD_RUNS = 15
TYPING_S = 1.5  # between `%load_ext` and the first job cell: the extension warms up meanwhile


def script(code: str) -> str:
    """The very script the magic submits for this code, so that both sides run the same job."""
    spec = build_spec(parse_line(FLAGS))
    return build_script(code, spec, variables={}, notebook=None).text


def plain_cell(code: str, user: str) -> str:
    """What a user writes without the magic: the same job, its lines printed as they come."""
    return (
        "import os\nfrom huggingface_hub import HfApi\n"
        "api = HfApi()\n"
        f"info = api.run_job(image='ghcr.io/astral-sh/uv:python3.12-bookworm', command={JOB_COMMAND!r},\n"
        f"                   env={{'PYTHONUNBUFFERED': '1', {SCRIPT_ENV!r}: {script(code)!r}}},\n"
        "                   secrets={'HF_TOKEN': os.environ['HF_TOKEN']}, timeout=300, "
        f"namespace={user!r})\n"
        f"for line in api.fetch_job_logs(job_id=info.id, namespace={user!r}, follow=True):\n"
        "    print(line)"
    )


def median_seconds(args: list[str], runs: int = 5, env: dict | None = None) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cell_seconds(cell: nbformat.NotebookNode) -> float:
    """Cell run time from the timestamps nbclient records."""
    meta = cell.metadata["execution"]
    start = datetime.fromisoformat(meta["iopub.execute_input"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(meta["shell.execute_reply"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def execute(cells: list[str], env: dict[str, str]) -> list[float]:
    """Run the cells in one fresh kernel; the seconds each took."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(nb, timeout=600, kernel_name="python3").execute(env={**os.environ, **env})
    for cell in nb.cells:
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        if errors:
            raise RuntimeError(f"cell failed: {cell.source[:60]!r}: {errors[0]['evalue']}")
    return [cell_seconds(c) for c in nb.cells]


def row(what: str, magic: float, other: float, versus: str, goal: float) -> None:
    ratio = magic / other
    print(f"{what:<44} {magic * 1000:8.0f} ms vs {other * 1000:8.0f} ms {versus:<26} "
          f"{ratio:5.2f}x (goal <= {goal}x) {'ok' if ratio <= goal else 'MISSED'}")


def bench_kernel(sb: Sandbox, env: dict[str, str]) -> None:
    pairs = [(f"{MAGIC}\n{TINY}", plain_cell(TINY, sb.user))] * REPEAT
    floods = [(f"{MAGIC}\n{FLOOD}", plain_cell(FLOOD, sb.user))] * REPEAT
    typing = f"import time\ntime.sleep({TYPING_S})"
    cells = ["%load_ext hfjobs_magic", typing, DETACH, DETACH] + [c for pair in pairs + floods for c in pair]
    execute(["%load_ext hfjobs_magic", DETACH], env)  # writes the bytecode of everything a kernel loads
    seconds = execute(cells, env)
    cold, second, rest = seconds[2], seconds[3], seconds[4:]
    at_once = statistics.median(execute(["%load_ext hfjobs_magic", DETACH], env)[1] for _ in range(FRESH_KERNELS))
    tiny, flood = rest[:2 * REPEAT], rest[2 * REPEAT:]
    cli_command = [str(BIN / "hf"), "jobs", "run", "--detach", "-e", f"{SCRIPT_ENV}={script('print(1)')}",
                   "-s", "HF_TOKEN",
                   "ghcr.io/astral-sh/uv:python3.12-bookworm", *JOB_COMMAND]
    subprocess.run(cli_command, check=True, capture_output=True, env={**os.environ, **env})  # its bytecode too
    cli = median_seconds(cli_command, runs=3, env={**os.environ, **env})
    row("tiny job (10 lines), cell start to end", statistics.median(tiny[0::2]), statistics.median(tiny[1::2]),
        "plain run_job + follow", 1.5)
    row("job printing 200,000 lines", statistics.median(flood[0::2]), statistics.median(flood[1::2]),
        "plain run_job + follow", 1.1)
    row(f"first job cell, cold, {TYPING_S:g} s after %load_ext", cold, cli, "hf jobs run --detach", 0.5)
    row("first job cell, cold, right after %load_ext", at_once, cli, "hf jobs run --detach", 0.5)
    row("second job cell, same kernel, to submitted", second, cli, "hf jobs run --detach", 0.2)


def bench_load_ext(env: dict[str, str]) -> None:
    commands = [[sys.executable, "-c", IPYTHON_START],
                [sys.executable, "-c", IPYTHON_START + "; ip.run_line_magic('load_ext', 'hfjobs_magic')"]]
    times: list[list[float]] = [[], []]
    for _ in range(LOAD_RUNS):
        for command, seconds in zip(commands, times, strict=True):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=env)
            seconds.append(time.perf_counter() - start)
    row("IPython start + %load_ext hfjobs_magic", min(times[1][1:]), min(times[0][1:]), "IPython start", 1.1)


def main() -> None:
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with Sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = f"{tmp}/pycache"
        env = {"HF_ENDPOINT": sb.endpoint, "HF_TOKEN": sb.token, "HFJOB_HISTORY": f"{tmp}/history.jsonl",
               "HFJOB_HEADLESS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
        bench_kernel(sb, env)
        bench_load_ext(dict(os.environ))


if __name__ == "__main__":
    main()

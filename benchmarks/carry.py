"""How long does the carry analysis of a 200-cell notebook take, without a kernel?

    .venv/bin/python benchmarks/carry.py

`hfjob check` and `hfjob export` read the notebook's earlier cells by name (`carry.from_cells`)
for every job cell. The notebook here has 200 code cells: imports, constants, a chain of helpers
each calling the previous one, classes, IPython magics and assignments only a kernel knows; the
job cell reads the last helper, so the whole chain is carried. Goal: under 100 ms. Prints the
median of a few runs and its ratio to the goal, from one run. Asserts nothing.
"""

from __future__ import annotations

import statistics
import time

from hfjobs_magic.cell.carry import from_cells
from hfjobs_magic.cell.script import build_script
from hfjobs_magic.cell.spec import build_spec, parse_line

GOAL_S = 0.100
RUNS = 7


def notebook(cells: int = 200) -> list[tuple[int, str]]:
    """(index, source) of `cells` code cells, each kind in turn."""
    found = [(0, "import numpy as np\nimport pandas as pd\nfrom collections import Counter as C\nSCALE = 3")]
    for i in range(1, cells):
        kind = i % 4
        if kind == 0:
            source = f"%matplotlib inline\nrows_{i} = pd.read_csv('data_{i}.csv')\nLIMIT_{i} = {i}"
        elif kind == 1:
            source = (f"def helper_{i}(x):\n    \"\"\"Step {i}.\"\"\"\n    y = helper_{i - 4}(x) if {i} > 4 else x\n"
                      f"    return np.sqrt(y * SCALE) + LIMIT_{i - 1 if i > 1 else 0}\n")
        elif kind == 2:
            source = f"class Model_{i}:\n    def predict(self, x):\n        return helper_{i - 1}(x) * C('ab')['a']\n"
        else:
            source = f"for k in range({i}):\n    total_{i} = k\nLIMIT_{i} = {{'a': [{i}, 2.5]}}\nprint(LIMIT_{i})"
        found.append((i, source))
    return found


def main() -> None:
    cells = notebook()
    last = max(i for i, s in cells if s.startswith("class"))
    job = f"print(Model_{last}().predict(2))\n"
    spec = build_spec(parse_line("--no-token"))
    carried = from_cells([f"Model_{last}"], cells)
    times, whole = [], []
    for _ in range(RUNS):
        start = time.perf_counter()
        from_cells([f"Model_{last}"], cells)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        build_script(job, spec, variables={}, carrier=lambda names: from_cells(names, cells))
        whole.append(time.perf_counter() - start)
    median, script = statistics.median(times), statistics.median(whole)
    print(f"200 cells, {len(carried.blocks)} blocks carried, {len(carried.kernel_only)} kernel-only")
    print(f"carry analysis: {median * 1000:.1f} ms median of {RUNS} ({median / GOAL_S:.2f}x the 100 ms goal)")
    print(f"whole script with the carry: {script * 1000:.1f} ms ({script / GOAL_S:.2f}x the goal)")


if __name__ == "__main__":
    main()

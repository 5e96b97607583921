"""The carry (cell/carry.py): what a job cell reads from the notebook, from a live IPython shell and from
the cells of a notebook file, in dependency order; what cannot travel is refused by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from hfjobs_magic.cell.carry import dependency_order as order
from hfjobs_magic.cell.carry import from_cells
from hfjobs_magic.cell.carry_kernel import from_kernel
from hfjobs_magic.cell.script import build_script
from hfjobs_magic.cell.spec import build_spec, parse_line

HELPERS = [
    "import math as m\nfrom collections import Counter as C\nSCALE = 3",
    "def helper(x):\n    return inner(x) * SCALE\n\ndef inner(x):\n    return m.floor(x) + 1",
    "class Model:\n    def predict(self, x):\n        return later(x)",
    "def later(x):\n    return helper(x) * 2",
    "def helper(x):\n    return inner(x) * SCALE * 10",  # redefined: this one wins
]
JOB = "print('R', Model().predict(1.5), C('aab')['a'], SCALE)\n"
EXPECTED = "R 120 2 3"  # later(1.5) = helper(1.5) * 2 = (floor(1.5) + 1) * 3 * 10 * 2


def run_script(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "job.py"
    path.write_text(text, encoding="utf-8")
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is a dependency of hfjobs-magic"
    return subprocess.run([uv, "run", "--no-project", "--quiet", str(path)], capture_output=True, text=True,
                          env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"}, timeout=240, cwd=tmp_path)


def script_with(carrier, cell: str = JOB, line: str = "--no-token"):
    return build_script(cell, build_spec(parse_line(line)), variables={}, first_line=2, carrier=carrier)


# -- the order --------------------------------------------------------------------------------------

dags = st.integers(min_value=1, max_value=25).flatmap(
    lambda n: st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=60).map(
        lambda edges: (n, {(a, b) for a, b in edges if a > b})))  # a depends on b only when a > b: acyclic


def graph_of(n: int, edges: set[tuple[int, int]]) -> dict[str, list[str]]:
    return {f"n{i}": [f"n{b}" for a, b in sorted(edges) if a == i] for i in range(n)}


def reachable(graph: dict[str, list[str]], roots: list[str]) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += graph[name]
    return seen


@given(dags, st.data())
def test_every_name_comes_after_what_it_reads_once(dag, data):
    n, edges = dag
    graph = graph_of(n, edges)
    roots = data.draw(st.lists(st.sampled_from(sorted(graph)), min_size=1, max_size=5))
    result = order(roots, lambda name: graph[name])
    assert len(result) == len(set(result))
    assert set(result) == reachable(graph, roots)
    position = {name: i for i, name in enumerate(result)}
    for name in result:
        assert all(position[dep] < position[name] for dep in graph[name])


@given(st.integers(min_value=2, max_value=12))
def test_cycles_end_with_each_name_once(n):
    graph = {f"n{i}": [f"n{(i + 1) % n}"] for i in range(n)}  # mutual recursion all around
    assert sorted(order(["n0"], lambda name: graph[name])) == sorted(graph)


def test_a_long_chain_of_helpers_needs_no_recursion():
    graph = {f"n{i}": [f"n{i + 1}"] if i < 5000 else [] for i in range(5001)}
    assert order(["n0"], lambda name: graph[name])[0] == "n5000"


# -- without a kernel: the cells above ------------------------------------------------------------


def test_cells_are_carried_by_name_in_dependency_order_last_definition_wins(tmp_path):
    carry = from_cells(["Model", "C", "SCALE"], list(enumerate(HELPERS, start=1)))
    names = [b.name for b in carry.blocks]
    assert set(names) == {"Model", "later", "helper", "inner", "m", "C", "SCALE"}
    assert names.index("helper") < names.index("later") < names.index("Model")
    assert [b.cell for b in carry.blocks if b.name == "helper"] == [5]
    assert "m (cell 1)" not in carry.summary() and "Model (cell 3)" in carry.summary()
    script = script_with(lambda names: from_cells(names, list(enumerate(HELPERS, start=1))))
    assert "import math as m" in script.text and "from collections import Counter as C" in script.text
    assert "# carried from cell 5: helper" in script.text
    done = run_script(script.text, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == EXPECTED


def test_values_only_a_kernel_knows_are_kernel_only_not_guessed():
    cells = [(1, "import numpy as np\nW = np.arange(4)\nfor i in range(3):\n    total = i\n%matplotlib inline\nN = 2")]
    carry = from_cells(["W", "total", "N", "np", "missing"], cells)
    assert carry.kernel_only == ["W", "total"]
    assert [b.name for b in carry.blocks] == ["N", "np"] and carry.blocks[0].code == "N = 2"
    assert carry.nowhere == []  # the cell's own unknown names are the variables check's to report


# -- from a live shell ------------------------------------------------------------------------------


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    yield ip
    ip.reset()


def run_cells(ip: InteractiveShell, cells: list[str]) -> None:
    for cell in cells:
        assert ip.run_cell(cell, store_history=True).success


def kernel_carrier(ip: InteractiveShell, max_bytes: int = 1 << 30):
    return lambda names: from_kernel(names, ip.user_ns, cell_files=ip.compile._filename_map, max_bytes=max_bytes)


def test_a_kernel_carries_sources_imports_and_pickled_values(shell, tmp_path):
    run_cells(shell, [*HELPERS, "import dataclasses\n@dataclasses.dataclass\nclass Point:\n    x: int",
                      "P = Point(4)\nARR = __import__('numpy').arange(3)"])
    cell = JOB.rstrip("\n") + ", P.x, ARR.sum())\n"
    cell = cell.replace("SCALE)", "SCALE")
    script = script_with(kernel_carrier(shell), cell)
    carry = script.carry
    names = [b.name for b in carry.blocks]
    assert names.index("Point") < names.index("P")  # a pickle of a notebook class needs the class first
    assert not carry.refused and script.free_names == {}
    assert any(b.name == "ARR" and b.size for b in carry.blocks) and "numpy" in carry.modules()
    assert any(d.startswith("numpy==") for d in script.dependencies)  # pinned like the cell's own imports
    done = run_script(script.text, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{EXPECTED} 4 3"


def test_names_the_cell_reads_before_it_rebinds_them_travel_too(shell, tmp_path):
    """`rows = [r for r in rows if r]` and `n += 1` read the notebook's value first: without it the job
    raises NameError."""
    run_cells(shell, ["rows = [1, None, 3]\nn = 1\nscale = 10"])
    cell = ("rows = [r * scale for r in rows if r]\nn += 1\ntry:\n    cache\nexcept NameError:\n    cache = {}\n"
            "print('R', rows, n, cache)\n")
    script = script_with(kernel_carrier(shell), cell)
    assert {b.name for b in script.carry.blocks} == {"rows", "n", "scale"}  # `cache` is the cell's own check
    done = run_script(script.text, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "R [10, 30] 2 {}"


@pytest.mark.parametrize(("cell", "free"), [
    ("df = df.dropna()", {"df"}),
    ("x = 1\nx = x + 1", set()),
    ("for batch in loader:\n    loss = step(batch)\nprint(loss)", {"loader", "step"}),  # bound above its read
    ("if ready:\n    df = load()\ndf.head()", {"ready", "load"}),
    ("def f():\n    return model\nmodel = 2\nf()", set()),  # a body runs when called
    ("[y := v for v in data]\nprint(y)", {"data"}),
    ("@deco(arg)\ndef g(a=default):\n    pass", {"deco", "arg", "default"}),  # evaluated at definition
    ("class A(Base):\n    x = 1", {"Base"}),
    ("match cmd:\n    case [a, *rest]:\n        print(a, rest)\n    case {'k': v, **kw}:\n        print(v, kw)",
     {"cmd"}),
    ("with open(path) as fh:\n    fh.read()", {"path"}),
])
def test_what_a_cell_reads_before_binding_it_in_the_order_python_runs(cell, free):
    from hfjobs_magic.cell.names import undefined_names

    assert set(undefined_names(cell)) == free


@pytest.mark.parametrize("terms", [500, 1000, 2000, 5000])
def test_a_cell_too_deep_to_walk_is_no_crash(terms):
    from hfjobs_magic.cell.names import undefined_names

    assert set(undefined_names("x = " + " + ".join(["a"] * terms))) <= {"a"}


def test_a_carried_helper_has_what_notebooks_have_built_in(shell, tmp_path):
    """A helper from an earlier cell that calls `display` works in the job, and one that calls `get_ipython`
    gets the clear error, although the job cell itself names neither."""
    run_cells(shell, ["def show(x):\n    display({'shown': x})\n    return x + 1",
                      "def mount():\n    get_ipython().run_line_magic('cd', '/data')"])
    done = run_script(script_with(kernel_carrier(shell), "print('R', show(3))\n").text, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["{'shown':", "3}", "R", "4"]
    done = run_script(script_with(kernel_carrier(shell), "mount()\n").text, tmp_path)
    assert "used IPython syntax (%magic / !cmd), which cannot run in a job" in done.stderr
    assert "NameError" not in done.stderr


def test_what_cannot_travel_is_refused_by_name(shell):
    run_cells(shell, ["fn = lambda x: x"])
    shell.user_ns.update(lock=threading.Lock(), gen=(i for i in range(3)),
                         big=np.zeros(10_000), handle=open(os.devnull),  # noqa: SIM115
                         holder=SimpleNamespace(lock=threading.Lock()))
    try:
        carry = from_kernel(["lock", "gen", "fn", "big", "handle", "holder"], shell.user_ns, max_bytes=50_000)
    finally:
        shell.user_ns["handle"].close()
    refused = {r.name: r for r in carry.refused}
    assert set(refused) == {"lock", "gen", "fn", "big", "handle", "holder"} and not carry.blocks
    assert "lock" in refused["lock"].why and "inside the job cell" in refused["lock"].fix
    assert "cannot be pickled: cannot pickle '_thread.lock'" in refused["holder"].why
    assert "list(gen)" in refused["gen"].fix
    assert "lambda" in refused["fn"].why and "def fn" in refused["fn"].fix
    assert "78.1 KiB" in refused["big"].why and "carry_max_bytes" in refused["big"].fix
    assert "open file" in refused["handle"].why


class FakeCudaTensor:
    is_cuda = True
    device = "cuda:0"


def test_a_tensor_on_the_gpu_is_refused_with_cpu_as_the_fix():
    carry = from_kernel(["t"], {"t": FakeCudaTensor()})
    assert carry.refused[0].name == "t" and "t = t.cpu()" in carry.refused[0].fix


def test_carried_code_keeps_its_cell_in_tracebacks(shell, tmp_path):
    run_cells(shell, ["x = 0", "def deep():\n    y = 1\n    raise ValueError('deep down')"])
    count = shell.execution_count - 1
    script = script_with(kernel_carrier(shell), "print('start')\ndeep()\n")
    done = run_script(script.text, tmp_path)
    assert done.returncode == 1
    assert 'File "%%hfjob cell", line 3, in <module>\n    deep()' in done.stderr
    assert f'File "%%hfjob cell {count}", line 3, in deep\n    raise ValueError(\'deep down\')' in done.stderr
    assert "job.py" not in done.stderr


def test_no_carry_carries_nothing(shell):
    run_cells(shell, HELPERS)
    script = script_with(kernel_carrier(shell), line="--no-token --no-carry")
    assert script.carry is None and set(script.free_names) == {"Model", "C", "SCALE"}


def test_a_script_too_big_with_its_carried_code_is_refused_naming_the_biggest():
    huge = "def huge():\n" + "".join(f"    x{i} = '{'y' * 100}'\n" for i in range(6000)) + "    return 1\n"
    with pytest.raises(UsageError, match=r"would be \d+ KiB with what the cell carries: huge \(\d+ KiB\)"):
        script_with(lambda names: from_cells(names, [(1, huge)]), "print(huge())\n")

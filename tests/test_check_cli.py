"""`hfjob check NOTEBOOK... [--json]`: the checklist of every %%hfjob cell, without a kernel, for CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

HFJOB = str(Path(sys.executable).parent / "hfjob")


def notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Training run")] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))
    return path


def hfjob_check(sandbox, tmp_path: Path, *paths: Path, as_json: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": sandbox.endpoint, "HF_TOKEN": sandbox.token,
           "HF_HOME": str(tmp_path / "hf-home")}
    args = [HFJOB, "check", *map(str, paths)] + (["--json"] if as_json else [])
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def passing_cell(repo: str) -> str:
    return (f"%%hfjob --timeout 10m --push {repo} --repo-type dataset\n"
            "from datasets import Dataset\n"
            'ds = Dataset.from_dict({"text": ["a", "b"]})\n'
            f'ds.push_to_hub("{repo}")\n')


FAILING_CELL = (
    "%%hfjob --flavor a10g-larg --vars lr\n"
    "import torch\n"
    "model = torch.nn.Linear(4, 2)\n"
    "torch.save(model.state_dict(), f'model-{lr}.pt')\n"
)


@pytest.fixture
def mixed(tmp_path: Path, unique_name: str) -> Path:
    return notebook(tmp_path / "mixed.ipynb", [
        "import pandas as pd\nlr = 3e-4",
        passing_cell(f"alice/{unique_name}"),
        FAILING_CELL,
        "for epoch in range(3)\n    print(epoch)",  # not a job cell: not checked
        "%%hfjob --timeout 5m --push alice-lab/x --repo-type dataset\nfor epoch in range(3)\n    print(epoch)\n",
    ])


def test_json_report_for_every_job_cell(sandbox, tmp_path, mixed):
    done = hfjob_check(sandbox, tmp_path, mixed)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert [(r["notebook"], r["cell"]) for r in report] == [(str(mixed), 2), (str(mixed), 3), (str(mixed), 5)]
    for entry in report:
        assert set(entry) == {"notebook", "cell", "checks"}
        assert [c["id"] for c in entry["checks"]] == ["token", "secrets", "push_target", "persistence", "flavor",
                                                       "timeout", "script", "dependencies", "variables"]
        for check in entry["checks"]:
            assert set(check) == {"id", "status", "message", "fix"}
            assert all(isinstance(v, str) for v in check.values())
    # without a kernel, variables reads the cells above: nothing missing is ok; a cell that is no script, skip
    assert [entry["checks"][-1]["status"] for entry in report] == ["ok", "ok", "skip"]
    statuses = [{c["id"]: c["status"] for c in entry["checks"]} for entry in report]
    assert "fail" not in statuses[0].values()
    assert statuses[1]["flavor"] == "fail" and statuses[1]["persistence"] == "fail"
    assert statuses[2]["script"] == "fail"
    script = next(c for c in report[2]["checks"] if c["id"] == "script")
    assert "line 2" in script["message"]  # as the notebook shows the cell: line 1 is the %%hfjob line


def test_exit_0_when_every_check_passes(sandbox, tmp_path, unique_name):
    ok = notebook(tmp_path / "ok.ipynb", [passing_cell(f"alice/{unique_name}"),
                                          passing_cell(f"alice-lab/{unique_name}")])
    done = hfjob_check(sandbox, tmp_path, ok)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(json.loads(done.stdout)) == 2


def test_several_notebooks_and_the_text_table(sandbox, tmp_path, unique_name, mixed):
    ok = notebook(tmp_path / "ok.ipynb", [passing_cell(f"alice/{unique_name}")])
    done = hfjob_check(sandbox, tmp_path, ok, mixed, as_json=False)
    assert done.returncode == 1
    assert f"{ok} cell 1: ok" in done.stdout  # cell 0 is the markdown title
    assert f"{mixed} cell 3: FAILED" in done.stdout
    assert "did you mean a10g-large" in done.stdout
    assert sandbox.token not in done.stdout + done.stderr

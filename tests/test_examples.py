"""The example notebooks run unattended against the sandbox, as their first cell tells users to run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat

from hfjobs_magic.jobs.record import MIME
from tests.emulators import s3_server

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_example(name: str, out: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """`hfjob run notebooks/NAME --sandbox --yes`; returns the process and the job records left in the notebook."""
    done = subprocess.run([sys.executable, "-m", "hfjobs_magic.cli", "run", str(NOTEBOOKS / name), "--sandbox",
                           "--yes", "-o", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})
    nb = nbformat.read(out, as_version=4)
    records = [o["data"][MIME] for c in nb.cells for o in c.get("outputs", []) if MIME in o.get("data", {})]
    return done, records


def test_dataset_example_pushes_a_verified_dataset(tmp_path):
    done, records = run_example("dataset_example.ipynb", tmp_path / "dataset.ipynb")
    assert done.returncode == 0, done.stdout + done.stderr
    target = records[-1]["push"][0]
    assert records[-1]["stage"] == "COMPLETED" and target["repo_type"] == "dataset" and target["verified"]


def test_model_example_pushes_checkpoints_during_the_run(tmp_path):
    """--sync-every: several commits, each named after the job."""
    done, records = run_example("model_example.ipynb", tmp_path / "model.ipynb")
    assert done.returncode == 0, done.stdout + done.stderr
    target = records[-1]["push"][0]
    assert records[-1]["stage"] == "COMPLETED" and target["verified"]
    assert len(target["commits"]) >= 3 and all(records[-1]["id"] in c["title"] for c in target["commits"])


def test_s3_example_runs_against_a_local_s3(tmp_path):
    with s3_server("hfjob-examples") as env:
        done, records = run_example("s3_example.ipynb", tmp_path / "s3.ipynb", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    target = records[-1]["push"][0]
    assert target["repo_type"] == "s3" and target["verified"]
    assert sorted(c["title"] for c in target["commits"]) == ["word-counts/summary.txt", "word-counts/top-words.json"]

"""huggingface_hub's own integration tests, from its sdist, pass against the sandbox (`tests/conformance`).

Runs the conformance runner in a subprocess (it starts its own sandbox with the suite's fixed
accounts) and shows its figure in the test run's output, whatever the outcome. Select it alone
with `pytest -m conformance`; it needs PyPI once, to fetch the sdist into the cache.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.run import DEFAULT_MIN

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.conformance
def test_huggingface_hub_suite_passes_against_the_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.conformance.run", "--min", str(DEFAULT_MIN)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    start = result.stdout.find("\nConformance:")
    summary = result.stdout[start:] if start >= 0 else result.stdout[-4000:] + result.stderr[-4000:]
    with capsys.disabled():
        print(summary)
    assert start >= 0, "the runner printed no figure"
    assert result.returncode == 0, f"under the bar of {DEFAULT_MIN:.0%}:\n{summary}"

"""The lab extension's wheel installs into a fresh venv without Node and JupyterLab lists it enabled.

The wheel is built by `labextension/ci.sh` (Node needed once, there; `.ci/run` runs it before the tests).
Without it this test skips, saying so; under CI (`CI` set, as `.ci/run` does) it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DIST = Path(__file__).resolve().parents[1] / "labextension" / "dist"
JUPYTER = Path(sys.executable).parent / "jupyter"


@pytest.fixture(scope="module")
def wheel() -> Path:
    found = sorted(DIST.glob("hfjobs_magic_lab-*.whl"))
    if not found:
        message = f"no hfjobs_magic_lab wheel in {DIST}: build it with `bash labextension/ci.sh` (needs Node once)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found[-1]


def no_node(*dirs: Path) -> dict[str, str]:
    """An environment whose PATH holds only `dirs`, none of which has node or npm."""
    assert not any((d / name).exists() for d in dirs for name in ("node", "npm"))
    return {"PATH": os.pathsep.join(map(str, dirs)), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}


def test_the_wheel_installs_without_node_and_is_listed_enabled(wheel, tmp_path):
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=300)
    assert shutil.which("node", path=str(fresh / "bin")) is None
    # Our pip installs into the fresh venv (`--python`): no copy of pip to bootstrap, no network, no Node.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(fresh / "bin" / "python"), "install", "--quiet",
                    "--no-index", "--no-deps", str(wheel)], env=no_node(fresh / "bin"), check=True, timeout=300)
    installed = fresh / "share" / "jupyter" / "labextensions" / "hfjobs-magic-lab"
    assert (installed / "package.json").is_file() and list((installed / "static").glob("remoteEntry.*.js"))
    # The venv has no JupyterLab (installing it needs the network): ask ours to list the venv's data dir.
    env = {**no_node(JUPYTER.parent), "JUPYTER_PATH": str(fresh / "share" / "jupyter")}
    listing = subprocess.run([str(JUPYTER), "labextension", "list"], env=env, capture_output=True, text=True,
                             timeout=120, check=True)
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    section = text.split(str(fresh / "share" / "jupyter" / "labextensions"), 1)
    assert len(section) == 2, text
    assert re.search(r"^\s+hfjobs-magic-lab v[0-9.]+ enabled OK", section[1].split("\n/", 1)[0], re.M), text

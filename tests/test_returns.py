"""`--return`'s signatures (cell/returns.py): what the job's epilogue writes is set only when every file is
there and signed by this job's key; a missing, unsigned, renamed or altered file refuses them all."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hfjobs_magic.cell.returns import (
    KEY_SECRET,
    MANIFEST,
    ReturnRefused,
    epilogue,
    new_plan,
    read_manifest,
    sign,
    verify,
)


def signed_files(plan, values: dict, fmt: str = "pickle"):
    files, manifest = {}, {}
    for name, value in values.items():
        data = json.dumps(value).encode() if fmt == "json" else pickle.dumps(value, protocol=5)
        files[name] = data
        manifest[name] = {"format": fmt, "type": type(value).__qualname__, "bytes": len(data),
                          "hmac": sign(plan.key, name, fmt, data)}
    return manifest, files


def test_signed_values_read_back():
    plan = new_plan(("score", "counts"), "alice")
    manifest, files = signed_files(plan, {"score": 0.25, "counts": Counter("aab")})
    found = {r.name: r.value for r in verify(plan, read_manifest(json.dumps(manifest).encode(), plan), files)}
    assert found == {"score": 0.25, "counts": Counter("aab")}


def test_an_altered_a_swapped_or_a_foreign_file_is_refused():
    plan = new_plan(("a", "b"), "alice")
    manifest, files = signed_files(plan, {"a": 1, "b": 2}, fmt="json")
    with pytest.raises(ReturnRefused, match="a: the signature does not match"):
        verify(plan, manifest, {**files, "a": b"666"})
    with pytest.raises(ReturnRefused, match="signature does not match"):
        verify(plan, manifest, {"a": files["b"], "b": files["a"]})  # names are signed too
    other = new_plan(("a", "b"), "alice")  # another job's key
    with pytest.raises(ReturnRefused, match="signature does not match"):
        verify(other, manifest, files)
    with pytest.raises(ReturnRefused, match="signature does not match"):
        verify(plan, {**manifest, "a": {k: v for k, v in manifest["a"].items() if k != "hmac"}}, files)


def test_a_missing_manifest_file_or_name_is_refused():
    plan = new_plan(("a", "b"), "alice")
    manifest, files = signed_files(plan, {"a": 1, "b": 2})
    with pytest.raises(ReturnRefused, match="left no returns.json"):
        read_manifest(None, plan)
    with pytest.raises(ReturnRefused, match="returned no b"):
        read_manifest(json.dumps({"a": manifest["a"]}).encode(), plan)
    with pytest.raises(ReturnRefused, match="b: the file hfjobs-magic/.*/b.pickle is missing"):
        verify(plan, manifest, {"a": files["a"], "b": None})


def test_the_key_is_never_in_the_plan_repr_or_the_environment():
    plan = new_plan(("a",), "alice")
    assert plan.key not in repr(plan) and plan.key not in json.dumps(plan.env())
    assert plan.secrets() == {KEY_SECRET: plan.key} and plan.bucket == "alice/jobs-artifacts"


def test_the_epilogue_signs_what_verify_accepts(tmp_path):
    """The job's own code, run for real with HfApi replaced by a folder (no bucket needed for this part)."""
    plan = new_plan(("score", "rows", "pair"), "alice")
    fake = tmp_path / "huggingface_hub"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\nclass HfApi:\n    def batch_bucket_files(self, bucket, add):\n"
        "        for data, path in add:\n"
        "            target = os.path.join(os.environ['OUT'], path)\n"
        "            os.makedirs(os.path.dirname(target), exist_ok=True)\n"
        "            open(target, 'wb').write(data)\n")
    script = "score = 0.5\nrows = [{'a': 1}]\npair = (1, 2)\n" + epilogue(plan.names)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OUT": str(tmp_path / "bucket"), **plan.env(), **plan.secrets()}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    folder = Path(tmp_path / "bucket" / plan.prefix)
    manifest = read_manifest((folder / MANIFEST).read_bytes(), plan)
    assert manifest["score"]["format"] == "json" and manifest["pair"]["format"] == "pickle"  # a tuple stays a tuple
    files = {n: (folder / f"{n}.{manifest[n]['format']}").read_bytes() for n in plan.names}
    values = {r.name: r.value for r in verify(plan, manifest, files)}
    assert values == {"score": 0.5, "rows": [{"a": 1}], "pair": (1, 2)}
    assert plan.key not in done.stdout + done.stderr

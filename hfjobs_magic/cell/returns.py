"""`--return a,b`: values a job sends back to the notebook, signed so that only what this job made is set.

When the cell's code ends, the script's epilogue saves each name (JSON when it is plain JSON,
else a pickle), signs it with HMAC-SHA256 under a random per-job key that reached the job as a
secret, and uploads the files and a manifest to the private bucket `{namespace}/jobs-artifacts`
under `hfjobs-magic/<key id>/`. The kernel downloads them when the job COMPLETES and `verify`
refuses a missing, unsigned or altered file before anything is set. The key is never written
to the script, the record, an output or the history: it lives in the kernel that submitted the job
and, for a new kernel after a restart, in a file only the user can read (`jobs/keys.py`).

Pure: planning, the epilogue's text and the verification; the transfers are `remote`'s and `jobs`'.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import secrets
from dataclasses import dataclass, field
from typing import Any

ARTIFACTS_BUCKET = "jobs-artifacts"
FOLDER = "hfjobs-magic"
MANIFEST = "returns.json"
KEY_SECRET = "HFJOB_RETURN_KEY"
BUCKET_ENV = "HFJOB_RETURN_BUCKET"
PREFIX_ENV = "HFJOB_RETURN_PREFIX"
MAX_RETURN_BYTES = 1 << 30  # in all; bigger results belong in a repo (--outputs --push)


class ReturnRefused(Exception):
    """The returned values cannot be trusted or read; nothing was set."""


@dataclass(frozen=True)
class ReturnPlan:
    """Where one job's returns go and the key that signs them (kept out of every record)."""

    names: tuple[str, ...]
    bucket: str
    key_id: str
    key: str = field(repr=False)

    @property
    def prefix(self) -> str:
        return f"{FOLDER}/{self.key_id}"

    def env(self) -> dict[str, str]:
        return {BUCKET_ENV: self.bucket, PREFIX_ENV: self.prefix}

    def secrets(self) -> dict[str, str]:
        return {KEY_SECRET: self.key}


def new_plan(names: tuple[str, ...], namespace: str) -> ReturnPlan:
    return ReturnPlan(names, f"{namespace}/{ARTIFACTS_BUCKET}", secrets.token_hex(8), secrets.token_hex(32))


def sign(key: str, name: str, fmt: str, data: bytes) -> str:
    """HMAC-SHA256 over the name, the format and the bytes: a file cannot be renamed or swapped either."""
    return hmac.new(key.encode(), name.encode() + b"\0" + fmt.encode() + b"\0" + data, hashlib.sha256).hexdigest()


def epilogue(names: tuple[str, ...]) -> str:
    """The script's last part: save, sign and upload `names` for the notebook."""
    return "\n".join([
        f"# --return {','.join(names)}: saved, signed and sent to the notebook when the cell's code ends",
        "def _hfjob_return(names):",
        '    """Each name as JSON when it is plain JSON, else a pickle; HMAC-signed; one bucket batch."""',
        "    import hashlib, hmac, json, os, pickle",
        "    from huggingface_hub import HfApi",
        "",
        f"    key = os.environ.pop({KEY_SECRET!r}).encode()",
        f"    bucket, prefix = os.environ[{BUCKET_ENV!r}], os.environ[{PREFIX_ENV!r}]",
        "    manifest, files = {}, []",
        "    for name in names:",
        "        value = globals()[name]",
        "        try:",
        "            data, fmt = json.dumps(value, allow_nan=False).encode(), 'json'",
        "            if json.loads(data) != value or _hfjob_kind(value) != 'json':",
        "                raise TypeError",
        "        except (TypeError, ValueError):",
        "            data, fmt = pickle.dumps(value, protocol=5), 'pickle'",
        "        signed = name.encode() + b'\\0' + fmt.encode() + b'\\0' + data",
        "        mac = hmac.new(key, signed, hashlib.sha256).hexdigest()",
        "        manifest[name] = {'format': fmt, 'type': type(value).__qualname__, 'bytes': len(data), 'hmac': mac}",
        "        files.append((data, f'{prefix}/{name}.{fmt}'))",
        f"    files.append((json.dumps(manifest).encode(), f'{{prefix}}/{MANIFEST}'))",
        "    HfApi().batch_bucket_files(bucket, add=files)",
        "    size = sum(len(data) for data, _ in files)",
        "    print(f'[hfjob] returned {\", \".join(names)} ({size} bytes, signed)', flush=True)",
        "",
        "",
        "def _hfjob_kind(value):",
        '    """json only for what reads back as the very same types (no tuples, no int-keyed dicts)."""',
        "    if value is None or type(value) in (bool, int, float, str):",
        "        return 'json'",
        "    if type(value) is list:",
        "        return 'json' if all(_hfjob_kind(v) == 'json' for v in value) else 'pickle'",
        "    if type(value) is dict and all(type(k) is str for k in value):",
        "        return 'json' if all(_hfjob_kind(v) == 'json' for v in value.values()) else 'pickle'",
        "    return 'pickle'",
        "",
        "",
        f"_hfjob_return({tuple(names)!r})",
    ])


@dataclass(frozen=True)
class Returned:
    """One value the job returned, verified; `type` and `bytes` go into the record."""

    name: str
    value: Any
    type: str
    bytes: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "bytes": self.bytes}


def read_manifest(data: bytes | None, plan: ReturnPlan) -> dict[str, dict[str, Any]]:
    """The manifest, with an entry for every expected name; else `ReturnRefused` saying what is missing."""
    if data is None:
        raise ReturnRefused(f"the job left no {MANIFEST} in {plan.bucket}/{plan.prefix}: it did not return anything")
    try:
        manifest = json.loads(data)
        assert isinstance(manifest, dict)
    except (ValueError, AssertionError):
        raise ReturnRefused(f"{plan.bucket}/{plan.prefix}/{MANIFEST} is not a manifest this tool wrote") from None
    missing = [n for n in plan.names if not isinstance(manifest.get(n), dict)]
    if missing:
        raise ReturnRefused(f"the job returned no {', '.join(missing)}")
    return manifest


def file_name(plan: ReturnPlan, name: str, entry: dict[str, Any]) -> str:
    fmt = entry.get("format")
    if fmt not in ("json", "pickle"):
        raise ReturnRefused(f"{name}: unknown format {fmt!r} in the manifest")
    return f"{plan.prefix}/{name}.{fmt}"


def verify(plan: ReturnPlan, manifest: dict[str, dict[str, Any]], files: dict[str, bytes | None]) -> list[Returned]:
    """Every expected name, its signature checked before it is read; any failure refuses them all."""
    found = []
    for name in plan.names:
        entry = manifest[name]
        data = files.get(name)
        if data is None:
            raise ReturnRefused(f"{name}: the file {file_name(plan, name, entry)} is missing from {plan.bucket}")
        if not isinstance(entry.get("hmac"), str) or not hmac.compare_digest(
                entry["hmac"], sign(plan.key, name, entry["format"], data)):
            raise ReturnRefused(f"{name}: the signature does not match ({file_name(plan, name, entry)} was altered, "
                                "or not written by this job); nothing was set")
        value = json.loads(data) if entry["format"] == "json" else pickle.loads(data)  # noqa: S301 (signed)
        found.append(Returned(name, value, str(entry.get("type", type(value).__qualname__)), len(data)))
    return found

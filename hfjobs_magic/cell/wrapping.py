"""`--outputs`: the cell's code inside the wrapper that pushes the folder whatever happens.

The generated script carries `persist.py`'s source, run in a namespace of its own, and the
cell indented under `try:`, so an error, a timeout or a cancel still ends in a final push.
Only the client of the chosen target is imported (and so becomes a dependency).
"""

from __future__ import annotations

import ast
import hashlib
import io
import tokenize
from pathlib import Path

from hfjobs_magic.cell import persist
from hfjobs_magic.cell.spec import JOB_WORKDIR, JobSpec

INDENT = "    "
CLIENT_IMPORTS = {
    "hub": "import huggingface_hub  # the wrapper pushes with it",
    "bucket": "import huggingface_hub  # the wrapper uploads with it where the bucket is not mounted",
    "s3": "import boto3  # the wrapper pushes with it",
    "gs": "from google.cloud import storage  # the wrapper pushes with it",
}


def cell_hash(cell: str) -> str:
    """The short id of a cell's source, as job labels and cards name it."""
    return hashlib.sha256(cell.encode()).hexdigest()[:12]


def persist_source() -> str:
    """The wrapper's code, as it ships in the script (a raw string cannot hold ''' )."""
    source = Path(persist.__file__).read_text(encoding="utf-8")
    assert "'''" not in source and not source.rstrip().endswith("\\"), "persist.py must fit in r'''...'''"
    return source


def wrapper_imports(spec: JobSpec) -> str:
    """The import of the target's client: visible to dependency inference, and fails fast."""
    return CLIENT_IMPORTS[spec.push_kind or "hub"]


def wrap_body(body: str, spec: JobSpec, *, notebook: str | None, cell: str) -> str:
    """The cell's code run inside `persist.Outputs`: pushed on success, error and SIGTERM."""
    return "\n".join([
        _explanation(spec),
        wrapper_imports(spec),
        "_hfjob_persist = __import__('types').ModuleType('hfjob_persist')",
        f"exec(compile(r'''{persist_source()}''', 'hfjob_persist.py', 'exec'), _hfjob_persist.__dict__)",
        f"_hfjob_outputs = _hfjob_persist.Outputs({_arguments(spec, notebook, cell)}).start()",
        "try:",
        indent(body.rstrip()) if _has_statements(body) else INDENT + "pass",
        "except BaseException as _hfjob_error:",
        INDENT + "_hfjob_outputs.close(_hfjob_error)",
        INDENT + "raise",
        "_hfjob_outputs.close()",
    ])


def _explanation(spec: JobSpec) -> str:
    if spec.outputs_mount is not None:
        return "\n".join([
            f"# --outputs {spec.outputs} --push {spec.push}: the bucket is mounted in the job at "
            f"{spec.outputs_mount.mount_path}",
            "# (a volume), so every file the cell writes there is in the bucket at once, even if the job is killed.",
            "# The wrapper (hfjobs_magic/cell/persist.py, in a namespace of its own) runs the cell where the",
            "# folder is the mount and writes the card; run without the mount, it uploads the folder at the end.",
        ])
    every = f", and every {spec.sync_every_seconds} s while it runs" if spec.sync_every_seconds else ""
    return "\n".join([
        f"# --outputs {spec.outputs} --push {spec.push}: the cell runs inside a wrapper that pushes the folder when",
        f"# the cell ends, when it raises, and on SIGTERM (timeout or cancel){every}. Its code is",
        "# hfjobs_magic/cell/persist.py, run in a namespace of its own so the cell's names cannot clash with it.",
    ])


def _arguments(spec: JobSpec, notebook: str | None, cell: str) -> str:
    card = {"flavor": spec.flavor, "notebook": notebook or "", "cell": cell_hash(cell)} if spec.card else None
    values = {"folder": spec.outputs, "target": spec.push, "repo_type": spec.repo_type or "model",
              "every_s": spec.sync_every_seconds, "card": card}
    if (mount := spec.outputs_mount) is not None:
        relative = not (spec.outputs or "").startswith("/")
        values |= {"mount": mount.mount_path, "workdir": JOB_WORKDIR if relative else None}
    return ", ".join(f"{key}={value!r}" for key, value in values.items())


def _has_statements(body: str) -> bool:
    return bool(ast.parse(body).body)


def indent(code: str) -> str:
    """Indent every line one level, except the lines inside a multi-line string (their text would change)."""
    inside = _string_continuation_lines(code)
    return "\n".join(
        line if number in inside or not line.strip() else INDENT + line
        for number, line in enumerate(code.split("\n"), start=1)
    )


def _string_continuation_lines(code: str) -> set[int]:
    """Line numbers (1-based) that start inside a string token opened on an earlier line."""
    inside: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        (start, _), (end, _) = token.start, token.end
        if end > start and token.type not in (tokenize.NL, tokenize.NEWLINE):
            inside.update(range(start + 1, end + 1))
    return inside

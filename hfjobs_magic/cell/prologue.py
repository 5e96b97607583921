"""The code every job script starts with: fail fast on a missing secret, run notebook code under its
cell's name (so tracebacks point at the notebook), load carried values, and stand in for what
notebooks have built in (`display`, `get_ipython`).

Pure text; `script` puts it together with the cell.
"""

from __future__ import annotations

from collections.abc import Iterable

from hfjobs_magic.cell.spec import TOKEN_SECRET

ARTIFACTS_ENV = "HFJOB_ARTIFACTS_BUCKET"  # set by the submission when carried values travel through the bucket


def render_prologue(secret_names: Iterable[str], *, shell: bool = False, ipython: bool = False,
                    display: bool = False, unpickle: bool = False, fetch: bool = False) -> str:
    """Fail fast on a missing secret, run notebook code under its cell's name, and stand in for
    what notebooks have built in."""
    names = list(secret_names)
    imports = [m for m, used in (("os", names), ("subprocess", shell), ("sys", True)) if used]
    lines = [f"import {m}" for m in imports] + _LIVE_PROGRESS
    if names:
        lines += ["", "# Fail fast when a secret did not reach the job."]
    for name in names:
        lines += [f"if not os.environ.get({name!r}):", f"    sys.exit({_missing_secret(name)!r})"]
    if shell:
        lines += ["", "sys.stdout.reconfigure(line_buffering=True)  # keep print() and !cmd output in order"]
    lines += _RUNNER
    if unpickle:
        lines += _UNPICKLE
    if fetch:
        lines += _FETCH
    if ipython:
        lines += _GET_IPYTHON_STUB
    if display:
        lines += _DISPLAY_SHIM
    return "\n".join(lines)


# Job logs are split on "\n": a progress bar redrawn with "\r" (tqdm) would show only when it ends.
# Ending the line at each "\r" shows every state live; the views fold them back into one line.
_LIVE_PROGRESS = [
    "",
    "",
    "class _LiveLines:",
    '    """A stream whose "\\r" ends the line (when something is on it), so each progress update reaches the log."""',
    "",
    "    def __init__(self, stream):",
    "        self._stream, self._mid = stream, False",
    "",
    "    def write(self, text):",
    '        pieces = text.split("\\r")',
    "        out, mid = [pieces[0]], (not pieces[0].endswith(\"\\n\")) if pieces[0] else self._mid",
    "        for piece in pieces[1:]:",
    '            if mid and not piece.startswith("\\n"):',
    '                out.append("\\n")',
    "                mid = False",
    "            out.append(piece)",
    '            mid = (not piece.endswith("\\n")) if piece else mid',
    "        self._mid = mid",
    '        self._stream.write("".join(out))',
    "        return len(text)",
    "",
    "    def __getattr__(self, name):",
    "        return getattr(self._stream, name)",
    "",
    "",
    "if not sys.stderr.isatty():",
    "    sys.stdout, sys.stderr = _LiveLines(sys.stdout), _LiveLines(sys.stderr)",
]

_RUNNER = [
    "",
    "",
    "def _hfjob_run(name, first_line, source):",
    '    """Run notebook code compiled as its cell, so a traceback shows the cell\'s name, lines and text."""',
    "    import linecache",
    "",
    '    text = "\\n" * (first_line - 1) + source',
    "    linecache.cache[name] = (len(text), None, text.splitlines(True), name)",
    '    exec(compile(text, name, "exec", dont_inherit=True), globals())',
    "",
    "",
    "def _hfjob_excepthook(kind, error, tb):",
    '    """Tracebacks start in the notebook\'s code (this file\'s frames left out), lines from linecache."""',
    "    import traceback",
    "",
    "    inner = tb",
    "    while inner is not None and inner.tb_frame.f_code.co_filename == __file__:",
    "        inner = inner.tb_next",
    "    traceback.print_exception(kind, error, inner or tb)",
    "",
    "",
    "__import__('sys').excepthook = _hfjob_excepthook",
]

_FETCH = [
    "",
    "",
    "def _hfjob_fetch(path, sha256):",
    '    """A carried value too big for this script, from the private artifacts bucket; its hash is pinned here."""',
    "    import hashlib, os, pickle, sys, tempfile",
    "    from huggingface_hub import HfApi",
    "",
    "    with tempfile.TemporaryDirectory() as folder:",
    "        local = os.path.join(folder, 'value.pickle')",
    f"        HfApi().download_bucket_files(os.environ[{ARTIFACTS_ENV!r}], files=[(path, local)])",
    "        with open(local, 'rb') as handle:",
    "            data = handle.read()",
    "    if hashlib.sha256(data).hexdigest() != sha256:",
    "        sys.exit(f'hfjob: the carried value {path} was altered in the bucket; it was not loaded')",
    "    return pickle.loads(data)",
]

_UNPICKLE = [
    "",
    "",
    "def _hfjob_unpickle(text):",
    '    """A value carried from the notebook: pickled there, zlib-compressed, base85."""',
    "    import base64, pickle, zlib",
    "",
    "    return pickle.loads(zlib.decompress(base64.b85decode(text)))",
]


def _missing_secret(name: str) -> str:
    if name == TOKEN_SECRET:
        return ("hfjob: HF_TOKEN is not set in this job; log in (hf auth login) or set HF_TOKEN where you submit, "
                "or pass --no-token if the job needs no token")
    return f"hfjob: secret {name} is not set in this job; pass it with --secrets {name}"


_GET_IPYTHON_STUB = [
    "",
    "",
    "def get_ipython():",
    '    """Notebooks have IPython; a job does not. The line that called this cannot run here."""',
    "    raise RuntimeError(",
    '        "this line used IPython syntax (%magic / !cmd), which cannot run in a job: "',
    '        "rewrite it in plain Python (see the line in the traceback)"',
    "    )",
]

_DISPLAY_SHIM = [
    "",
    "",
    "def display(*objs, **kwargs):",
    '    """Notebooks have display() built in; in a job it prints."""',
    "    print(*objs)",
]

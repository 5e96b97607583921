"""A `%%hfjob` cell -> a standalone PEP 723 uv script (DESIGN.md section 2, second arrow).

Pure: no network, no kernel. The script carries its dependencies (inferred from the
imports, pinned to this kernel's versions) and a `[tool.hf-jobs]` table with the job's
flags, so the same file also runs with `hf jobs uv run`. IPython syntax is translated by
IPython's own transformer; what cannot run outside IPython is reported, never dropped.
"""

from __future__ import annotations

import ast
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.inputtransformer2 import TransformerManager

from hfjobs_magic.cell.carry import CELL_FILE, Carry, run_call
from hfjobs_magic.cell.deps import find_imports, infer_dependencies, merge_dependencies, requirement_name
from hfjobs_magic.cell.names import line_opcodes, undefined_names
from hfjobs_magic.cell.prologue import render_prologue
from hfjobs_magic.cell.scan import CellScan, scan
from hfjobs_magic.cell.spec import JobSpec, load_toml, lone_surrogate
from hfjobs_magic.cell.wrapping import wrap_body, wrapper_imports

MAX_SCRIPT_BYTES = 64 * 1024  # the cell; the script is shipped inline to the job (DESIGN.md section 3)
MAX_TOTAL_BYTES = 512 * 1024  # the whole script: well under the 1 MB environment limit (huggingface_hub#3616)
MAX_VARS_BYTES = 32 * 1024  # the --vars values, so that the whole script stays well under 128 KiB
JOB_IMAGE_PYTHON = (3, 12)

# Reference regex of PEP 723 (https://peps.python.org/pep-0723/#reference-implementation).
PEP723_REGEX = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")

# Whole words of a variable name: WANDB_API_KEY and HF_TOKEN look secret, TOKENIZERS_PARALLELISM does not.
_SECRET_LOOKING = re.compile(r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|PASS|KEY|APIKEY|CREDENTIALS?|AUTH|PAT)(_|$)", re.I)
_PIP_INSTALL = re.compile(r"^\s*(pip3?|conda|mamba|micromamba|uv\s+pip|python3?\s+-m\s+pip)\s+install\b")
_HELP_MAGICS = {"pinfo", "pinfo2", "psearch"}
_INSTALL_MAGICS = {"pip", "conda", "mamba", "micromamba", "uv"}


@dataclass(frozen=True)
class JobScript:
    """The generated script and what the checklist needs to know about it."""

    text: str
    body: str
    dependencies: list[str]
    imports: list[str]
    unresolved_imports: list[str]
    ipython_only: list[str]
    requires_python: str | None
    shell_commands: list[str]
    scan: CellScan  # the one scan of the cell's code: checks, push verification and carry all read it
    carry: Carry | None = None  # what came from the notebook; None with --no-carry or no carrier
    free_names: dict[str, int] = field(default_factory=dict)  # read by the cell, bound nowhere in the script


Carrier = Callable[[list[str]], Carry]  # the names a cell reads and does not bind -> what travels with it


def build_script(
    cell: str,
    spec: JobSpec,
    *,
    variables: Mapping[str, Any] | None = None,
    notebook: str | None = None,
    epilogue: str = "",
    first_line: int = 1,
    carrier: Carrier | None = None,
) -> JobScript:
    """Turn a cell into a PEP 723 uv script for `spec`.

    The cell's code runs compiled under the name `%%hfjob cell` with its notebook line numbers,
    so a traceback in the job points at the cell. With `--outputs`, it runs inside the wrapper
    that pushes the folder (`wrapping`). `epilogue` is code run after the cell; its imports count
    too. `first_line` is the number of the cell's first line as the user sees it (2 under a
    `%%hfjob` line). `carrier` (unless --no-carry) brings what the cell reads from the notebook.
    """
    _check_size(cell, first_line)
    cell = cell.replace("\r\n", "\n")
    explicit, code, line_of = split_script_block(cell, first_line)
    converted = to_python(code, line_of)
    future, body = _hoist_future_imports(converted.code)
    free = {n: line for n, line in undefined_names(body).items() if n not in spec.vars}
    carried = carrier(list(free)) if carrier is not None and spec.carry else None
    run = run_call(CELL_FILE, first_line, to_python(_blank_script_block(cell), line_of).code)
    runs = wrap_body(run, spec, notebook=notebook, cell=cell) if spec.outputs else run
    added = f"{wrapper_imports(spec)}\n{epilogue}" if spec.outputs else epilogue  # code of ours that imports
    carried_text = carried.import_text() if carried else ""
    tree = ast.parse("\n".join([body, carried_text, added]))
    modules = find_imports(tree)
    dependencies, unresolved = _dependencies(explicit, modules, find_imports(ast.parse(added + "\n" + carried_text)),
                                             spec)
    metadata_ = _script_metadata(explicit, dependencies, spec)
    code_tree = ast.parse("\n".join([body, epilogue, carried_text]))  # a carried helper may call display() too
    prologue = render_prologue(
        spec.secret_names,
        shell=bool(converted.shell_commands),
        ipython=_uses_name(code_tree, "get_ipython"),
        display=_uses_name(code_tree, "display"),
        unpickle=bool(carried and any(b.size and not b.remote for b in carried.blocks)),
        fetch=bool(carried and carried.uploads()),
    )
    sections = [
        render_pep723(metadata_), _header(notebook, spec), future, prologue,
        render_vars(spec.vars, variables) if variables is not None else render_unknown_vars(spec.vars),
        carried.render() if carried else "", runs, epilogue,
    ]
    bound = (carried.bound if carried else set()) | _prologue_names(spec, bool(converted.shell_commands))
    text = "\n\n".join(s.strip("\n") for s in sections if s.strip()) + "\n"
    _check_total(text, carried)
    return JobScript(
        text=text,
        body=body,
        dependencies=list(metadata_.get("dependencies", [])),
        imports=sorted({m.split(".")[0] for m in modules}),
        unresolved_imports=unresolved,
        ipython_only=converted.problems,
        requires_python=metadata_.get("requires-python"),
        shell_commands=converted.shell_commands,
        scan=scan(body, _string_values(spec.vars, variables)),
        carry=carried,
        free_names={n: line for n, line in free.items() if n not in bound},
    )


def _blank_script_block(cell: str) -> str:
    """The cell with its `# /// script` block as empty lines: line numbers stay, and the script holds one block."""
    for match in PEP723_REGEX.finditer(cell):
        if match.group("type") == "script":
            lines = match.group(0).count("\n")
            return cell[: match.start()] + "\n" * lines + cell[match.end():]
    return cell


def _prologue_names(spec: JobSpec, shell: bool) -> set[str]:
    """Modules the prologue imports at the top level, which the cell's code may use as they are."""
    return {"sys"} | ({"os"} if spec.secret_names else set()) | ({"subprocess"} if shell else set())


def _check_size(cell: str, first_line: int) -> None:
    """The cell travels as UTF-8 inside the job's environment: it must encode, and fit."""
    if (at := lone_surrogate(cell)) is not None:
        raise UsageError(f"line {first_line + cell.count(chr(10), 0, at)}: character U+{ord(cell[at]):04X} is half of "
                         "a surrogate pair and cannot travel to the job as UTF-8: remove it, or write it as an "
                         f"escape in a string ('\\u{ord(cell[at]):04x}')")
    size = len(cell.encode("utf-8"))
    if size > MAX_SCRIPT_BYTES:
        raise UsageError(
            f"the cell is {size / 1024:.1f} KiB; a job receives its script inline, at most "
            f"{MAX_SCRIPT_BYTES // 1024} KiB: move code into a module or package (e.g. pushed to the Hub and "
            "installed with --with) and keep the cell short"
        )


def _check_total(text: str, carried: Carry | None) -> None:
    """The whole script, carried code included, stays well under the 1 MB a job's environment can hold."""
    size = len(text.encode("utf-8"))
    if size <= MAX_TOTAL_BYTES:
        return
    sources = sorted((b for b in carried.blocks if b.kind == "source"), key=lambda b: -len(b.code)) if carried else []
    biggest = ", ".join(f"{b.name} ({len(b.code.encode()) / 1024:.0f} KiB)" for b in sources[:3])
    raise UsageError(f"the job's script would be {size / 1024:.0f} KiB with what the cell carries"
                     f"{': ' + biggest if biggest else ''}; at most {MAX_TOTAL_BYTES // 1024} KiB travel inline: "
                     "move large helpers into a package (pushed to the Hub, installed with --with), or use --no-carry")


def _dependencies(
    explicit: dict[str, Any] | None, modules: list[str], epilogue_modules: list[str], spec: JobSpec
) -> tuple[list[str], list[str]]:
    """(requirements, unresolved imports): inferred, or the cell's own block plus what the
    epilogue needs; then `--with` on top, winning for the distributions it names."""
    inferred, unresolved = infer_dependencies(modules, pin=spec.pin, known=_names(explicit, spec))
    if explicit is not None:
        needed, _ = infer_dependencies(epilogue_modules, pin=spec.pin)
        inferred = merge_dependencies(explicit.get("dependencies", []), needed, replace=False)
    return merge_dependencies(inferred, spec.with_deps), unresolved


def _names(explicit: dict[str, Any] | None, spec: JobSpec) -> set[str]:
    """Distribution names the user declared, which cover imports we cannot resolve."""
    declared = explicit.get("dependencies", []) if explicit else []
    return {name for dep in (*declared, *spec.with_deps) if (name := requirement_name(dep))}


# --- IPython syntax -> Python -------------------------------------------------------------


@dataclass(frozen=True)
class Converted:
    """The cell as plain Python, and the IPython syntax that could not be converted."""

    code: str
    problems: list[str]
    shell_commands: list[str]


def to_python(code: str, line_of: Callable[[int], int] | None = None) -> Converted:
    """IPython syntax -> Python with IPython's own transformer; report what needs IPython.

    A statement `!cmd` (no $var/{var} expansion, not an install) becomes
    `subprocess.run(cmd, shell=True, check=True)`: it runs, and a failure fails the job.
    Everything else that became a `get_ipython()` call stays and is reported.
    """
    line_of = line_of or (lambda n: n)
    transformed = TransformerManager().transform_cell(code)
    lines = [line_of(n) for n in _line_map(code.splitlines(), transformed.splitlines())] or [line_of(1)]
    try:
        tree = ast.parse(transformed)
    except SyntaxError as exc:
        where = lines[min(max((exc.lineno or 1) - 1, 0), len(lines) - 1)]
        raise UsageError(f"line {where}: {exc.msg}; the cell must be valid Python apart from IPython syntax") from None
    except RecursionError:  # Python itself could not compile it either
        raise UsageError("the cell nests too deeply for Python to compile (an expression of thousands of terms?): "
                         "build it in a loop or split it") from None
    problems, shell, replacements = _scan(tree, lines)
    return Converted(_replace(transformed, replacements), problems, shell)


def _scan(tree: ast.AST, lines: list[int]) -> tuple[list[str], list[str], list[tuple[ast.AST, str]]]:
    """(problems, translated shell commands, replacements) for every use of get_ipython()."""
    statements = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    problems: list[tuple[int, str]] = []
    shell: list[tuple[int, str]] = []
    replacements: list[tuple[ast.AST, str]] = []
    handled: set[int] = set()
    for node in ast.walk(tree):
        if (call := _ipython_call(node)) is None:
            continue
        method, args = call
        handled.add(id(node.func.value.func))  # type: ignore[attr-defined]
        line = lines[node.lineno - 1]  # type: ignore[attr-defined]
        if id(node) in statements and _translatable(method, args):
            note = f"line {line}: `!{_short(args[0])}` runs as subprocess.run(..., shell=True, check=True)"
            shell.append((line, note))
            replacements.append((node, f"subprocess.run({args[0]!r}, shell=True, check=True)"))
        else:
            problems.append((line, f"line {line}: {_problem(method, args)}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "get_ipython" and id(node) not in handled:
            line = lines[node.lineno - 1]
            problems.append((line, f"line {line}: get_ipython() exists only inside IPython and cannot run in a job"))
    return [m for _, m in sorted(problems)], [m for _, m in sorted(shell)], replacements


def _line_map(original: list[str], transformed: list[str]) -> list[int]:
    """The 1-based original line of each transformed line (IPython drops and merges some)."""
    mapping = [1] * len(transformed)
    for _tag, i1, i2, j1, j2 in line_opcodes([s.strip() for s in original], [s.strip() for s in transformed]):
        # In a changed run, pair transformed lines in order with the original lines that start a statement.
        sources = [i for i in range(i1, i2) if original[i].strip() and not _continues(original, i)]
        sources = sources or [min(i1, max(len(original) - 1, 0))]
        for j in range(j1, j2):
            mapping[j] = sources[min(j - j1, len(sources) - 1)] + 1
    return mapping


def _continues(lines: list[str], i: int) -> bool:
    """Whether line `i` continues line `i - 1` (which IPython merges into one)."""
    return i > 0 and lines[i - 1].rstrip().endswith("\\")


def _ipython_call(node: ast.AST) -> tuple[str, list[Any]] | None:
    """`get_ipython().method(<constants>)` -> (method, constant args), else None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    inner = node.func.value
    if not (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "get_ipython"):
        return None
    args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
    return node.func.attr, args


def _translatable(method: str, args: list[Any]) -> bool:
    """A plain `!cmd` statement: no IPython variable expansion, not a package install."""
    if method != "system" or not args or not isinstance(args[0], str):
        return False
    return not re.search(r"[${]", args[0]) and not _PIP_INSTALL.match(args[0])


def _problem(method: str, args: list[Any]) -> str:
    """What to tell the user about one `get_ipython().method(...)` call."""
    first = str(args[0]) if args else ""
    rest = str(args[1]) if len(args) > 1 else ""
    if method == "run_line_magic" and first in _INSTALL_MAGICS and rest.lstrip().startswith("install"):
        return f"`%{first} {_short(rest)}` cannot run in a job; declare the packages with --with instead"
    if method == "run_line_magic" and first in _HELP_MAGICS:
        return f"`{_short(rest)}?` is IPython help syntax and cannot run in a job"
    if method == "run_line_magic":
        return f"`%{first}` is an IPython magic and cannot run in a job"
    if method == "run_cell_magic":
        return f"`%%{first}` is an IPython cell magic and cannot run in a job"
    if method == "system" and _PIP_INSTALL.match(first):
        return f"`!{_short(first)}` would install outside the job's environment; declare the packages with --with"
    if method == "system":
        return f"`!{_short(first)}` expands notebook variables ($x, {{x}}) and cannot run in a job; use subprocess.run"
    if method == "getoutput":
        return (f"`!{_short(first)}` captures shell output with IPython syntax and cannot run in a job; "
                "use subprocess.run(..., capture_output=True, text=True)")
    return "get_ipython() exists only inside IPython and cannot run in a job"


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _replace(text: str, replacements: list[tuple[ast.AST, str]]) -> str:
    """Replace each node's source segment (ast offsets are UTF-8 bytes) with new code."""
    data = text.encode("utf-8")
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line.encode("utf-8")))
    spans = [
        (starts[n.lineno - 1] + n.col_offset, starts[n.end_lineno - 1] + n.end_col_offset, new)  # type: ignore[attr-defined]
        for n, new in replacements
    ]
    for start, end, new in sorted(spans, reverse=True):
        data = data[:start] + new.encode("utf-8") + data[end:]
    return data.decode("utf-8")


def _hoist_future_imports(code: str) -> tuple[str, str]:
    """`from __future__ import ...` must open the file, so it moves above the prologue."""
    tree = ast.parse(code)
    future = [s for s in tree.body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]
    lines = code.splitlines(keepends=True)
    hoisted = []
    for statement in reversed(future):
        segment = ast.get_source_segment(code, statement) or ""
        own_lines = slice(statement.lineno - 1, statement.end_lineno)
        if "".join(lines[own_lines]).strip() != segment.strip():
            raise UsageError("put each `from __future__ import ...` on lines of its own")
        hoisted.insert(0, segment)
        del lines[own_lines]
    return "\n".join(hoisted), "".join(lines)


def _uses_name(tree: ast.AST, name: str) -> bool:
    """Whether `name` is read and never bound in the code (a builtin only notebooks have)."""
    loaded = bound = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name:
            loaded |= isinstance(node.ctx, ast.Load)
            bound |= isinstance(node.ctx, ast.Store)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            bound = True
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= any((a.asname or a.name) == name for a in node.names)
    return loaded and not bound


# --- PEP 723 --------------------------------------------------------------------------------


def split_script_block(
    cell: str, first_line: int = 1
) -> tuple[dict[str, Any] | None, str, Callable[[int], int]]:
    """(parsed `# /// script` block or None, the cell without it, cell-line -> user-line)."""
    blocks = [m for m in PEP723_REGEX.finditer(cell) if m.group("type") == "script"]
    if len(blocks) > 1:
        raise UsageError("the cell has more than one `# /// script` block; PEP 723 allows one")
    if not blocks:
        return None, cell, lambda n: n + first_line - 1
    match = blocks[0]
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:] for line in match.group("content").splitlines(keepends=True)
    )
    try:
        parsed = load_toml(content)
    except ValueError as exc:
        raise UsageError(f"the cell's `# /// script` block is not valid TOML: {exc}") from None
    end = match.end() + (1 if cell.startswith("\n", match.end()) else 0)
    start = cell.count("\n", 0, match.start()) + 1
    removed = cell.count("\n", match.start(), end)
    code = cell[: match.start()] + cell[end:]
    return parsed, code, lambda n: (n if n < start else n + removed) + first_line - 1


def _script_metadata(explicit: dict[str, Any] | None, dependencies: list[str], spec: JobSpec) -> dict[str, Any]:
    """The PEP 723 table: the cell's own block wins, except `--with`, `--python` and `[tool.hf-jobs]`."""
    result = dict(explicit or {})
    if spec.python:
        result["requires-python"] = f"=={spec.python}.*" if spec.python.count(".") == 1 else f"=={spec.python}"
    elif explicit is None:
        result["requires-python"] = ">=" + ".".join(map(str, min(sys.version_info[:2], JOB_IMAGE_PYTHON)))
    result["dependencies"] = dependencies
    tool = dict(result.get("tool", {}))
    tool["hf-jobs"] = hf_jobs_table(spec)
    result["tool"] = tool
    order = ["requires-python", "dependencies"]
    return {k: result[k] for k in order if k in result} | {k: v for k, v in result.items() if k not in order}


def hf_jobs_table(spec: JobSpec) -> dict[str, Any]:
    """The `[tool.hf-jobs]` keys `hf jobs uv run` reads: names of secrets, never their values."""
    table: dict[str, Any] = {"flavor": spec.flavor}
    optional = {"timeout": spec.timeout, "image": spec.image, "python": spec.python,
                "namespace": spec.namespace, "name": spec.name}
    table.update({k: v for k, v in optional.items() if v})
    if spec.secrets:
        table["secrets"] = list(spec.secret_names)
    env = {k: v for k, v in spec.env.items() if not looks_secret(k, v)}
    if env:
        table["env"] = env
    if spec.labels:
        table["labels"] = dict(spec.labels)
    if spec.job_volumes:
        table["volumes"] = [volume.text for volume in spec.job_volumes]
    return table


def looks_secret(key: str, value: str) -> bool:
    """An env entry that should have been a secret: kept out of the script text."""
    return bool(_SECRET_LOOKING.search(key)) or value.startswith(("hf_", "sk-", "ghp_", "github_pat_", "AKIA"))


def render_pep723(data: Mapping[str, Any]) -> str:
    """A `# /// script` block holding `data` as TOML."""
    toml = "\n".join(_toml(data)).splitlines()
    lines = ["# /// script"] + [f"# {line}" if line else "#" for line in toml] + ["# ///"]
    return "\n".join(lines)


def _toml(data: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[str]:
    """Enough TOML for PEP 723 metadata: scalars, arrays, nested tables."""
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    lines = []
    if path and (scalars or not tables):
        lines += ["", f"[{'.'.join(_toml_key(p) for p in path)}]"]
    for key, value in scalars:
        lines.append(f"{_toml_key(key)} = {_toml_value(value, multiline=key == 'dependencies')}")
    for key, value in tables:
        lines += _toml(value, (*path, key))
    return lines


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value: Any, multiline: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # also right for TOML's inf, -inf and nan
    if isinstance(value, str):
        return '"' + "".join(_toml_char(c) for c in value) + '"'
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        if multiline and value:
            return "[\n" + "".join(f"    {_toml_value(v)},\n" for v in value) + "]"
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return _toml_value(str(value))


def _toml_char(c: str) -> str:
    if c in '"\\':
        return "\\" + c
    if c.isprintable() and c != "\x7f":
        return c
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


# --- header, prologue, --vars ---------------------------------------------------------------


def _header(notebook: str | None, spec: JobSpec) -> str:
    source = " ".join(notebook.split()) if notebook else "a notebook"
    lines = [
        f"# Generated by hfjobs-magic from a %%hfjob cell of {source}.",
        "# Run it again with `hf jobs uv run <this file>`: the [tool.hf-jobs] table above holds the flags.",
    ]
    lines += [
        f"# --env {key} is not written here: it looks like a secret; pass it with --secrets {key}"
        for key, value in spec.env.items() if looks_secret(key, value)
    ]
    return "\n".join(lines)


def render_vars(names: Iterable[str], variables: Mapping[str, Any]) -> str:
    """`name = <literal>` for each `--vars` name, or a UsageError naming the culprit."""
    lines = []
    for name in names:
        if name not in variables:
            raise UsageError(f"--vars {name}: there is no variable {name!r} in the notebook; run the cell that "
                             "defines it first, or drop it from --vars")
        _check_literal(name, variables[name])
        lines.append(f"{name} = {variables[name]!r}")
    text = "\n".join(["# notebook variables (--vars)", *lines]) if lines else ""
    if len(text.encode("utf-8")) > MAX_VARS_BYTES:
        raise UsageError(f"--vars values take {len(text.encode('utf-8')) / 1024:.1f} KiB of script, at most "
                         f"{MAX_VARS_BYTES // 1024} KiB: push large data to the Hub and load it in the job")
    return text


def render_unknown_vars(names: Iterable[str]) -> str:
    """Without a kernel (`hfjob export`/`check`) the values are unknown: read each from HFJOB_VAR_<name> as JSON."""
    lines = [
        f"{name} = __import__('json').loads(__import__('os').environ.get('HFJOB_VAR_{name}') or "
        f"__import__('sys').exit('hfjob: --vars {name} was exported without a kernel; set HFJOB_VAR_{name} "
        "to its JSON value'))"
        for name in names
    ]
    header = "# notebook variables (--vars), values given as JSON in the environment"
    return "\n".join([header, *lines]) if lines else ""


_LITERAL_TYPES = (type(None), bool, int, float, str)
_VARS_TYPES = "None, bool, int, float, str, and lists, tuples and dicts (str keys) of those"


def _check_literal(name: str, value: Any, depth: int = 0) -> None:
    """Only values whose repr is a Python literal that reads back equal."""
    kind = type(value)
    ok = kind in _LITERAL_TYPES and not (kind is float and not math.isfinite(value))
    if kind in (list, tuple) and depth < 20:
        ok = True
        for item in value:
            _check_literal(name, item, depth + 1)
    elif kind is dict and depth < 20:
        ok = all(type(k) is str for k in value)
        for item in value.values():
            _check_literal(name, item, depth + 1)
    if not ok:
        raise UsageError(f"--vars {name}: a {kind.__name__} value cannot be sent to the job; --vars works with "
                         f"{_VARS_TYPES} (convert it, e.g. float(x) or x.tolist(), or push it to the Hub)")


def _string_values(names: tuple[str, ...] | list[str], variables: Mapping[str, Any] | None) -> dict[str, str]:
    """The --vars that are strings: the scan reads repo ids built from them."""
    known = variables or {}
    return {n: v for n in names if isinstance(v := known.get(n), str)}

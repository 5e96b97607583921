"""The carry: what a job cell reads from the notebook, made to travel inside its script.

A cell reads names it never binds (`names.undefined_names` of its one conversion). Each
becomes a block of script: a module or an imported name its import line (aliases kept), a
function or class defined in the notebook its source (and, recursively, what that source
reads), a value a literal (JSON-like) or a pickle (protocol 5, zlib, base85). Blocks come
out in dependency order, each name once. What cannot travel is refused by name, with what
to do. Two sources of truth: a live kernel namespace (`carry_kernel.from_kernel`), or, without
a kernel, the notebook's earlier code cells read by name (`from_cells` here, the last
definition wins). This module holds what both share: the blocks, their order and rendering.

Pure: reads what it is given (cell sources); no network.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hfjobs_magic.cell.names import IPYTHON_NAMES, undefined_names

CARRY_FOLDER = "hfjobs-magic/carry"  # in {namespace}/jobs-artifacts: values too big for the script
CELL_FILE = "%%hfjob cell"  # the file name tracebacks show for the job cell's own code
DEFAULT_MAX_BYTES = 1 << 30  # %config HFJobMagics.carry_max_bytes
INLINE_MAX_BYTES = 256 * 1024  # pickles inside the script, in all: the script travels in a 1 MB environment
LITERAL_MAX_BYTES = 64 * 1024  # one value written as a literal; bigger ones are pickled (smaller)
PICKLE_PROTOCOL = 5


@dataclass(frozen=True)
class Block:
    """One carried name: its kind, the code that binds it in the script, and where it came from."""

    name: str
    kind: str  # "import", "source" or "value"
    code: str
    cell: int | None = None  # the cell it came from (execution count in a kernel, index without one)
    first_line: int = 1  # of `code` in that cell (sources)
    size: int = 0  # bytes of a pickled value; 0 for a literal
    deps: tuple[str, ...] = ()  # names the code reads at the notebook's top level
    modules: tuple[str, ...] = ()  # top-level modules a pickle needs installed
    payload: bytes | None = field(default=None, repr=False)  # a pickle too big for the script: uploaded first
    remote: str | None = None  # its path in the artifacts bucket (content-addressed)

    @property
    def filename(self) -> str:
        """Where tracebacks say this code is: `%%hfjob cell 3`."""
        return f"{CELL_FILE} {self.cell}" if self.cell is not None else f"{CELL_FILE} (notebook)"


@dataclass(frozen=True)
class Refusal:
    """A name that cannot travel to the job, why, and what to do instead (the variables check says it)."""

    name: str
    why: str
    fix: str


@dataclass
class Carry:
    """The outcome: blocks in dependency order, refusals, and (without a kernel) what only a kernel knows."""

    blocks: list[Block] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    kernel_only: list[str] = field(default_factory=list)  # bound above in a way only running it tells
    nowhere: list[str] = field(default_factory=list)  # read by carried code, defined nowhere

    @property
    def bound(self) -> set[str]:
        return {b.name for b in self.blocks}

    def summary(self) -> str:
        """"helper, Model (cell 3); np, m; SCALE; WEIGHTS (40 B)"."""
        parts = []
        sources: dict[int | None, list[str]] = {}
        for block in self.blocks:
            if block.kind == "source":
                sources.setdefault(block.cell, []).append(block.name)
        parts += [", ".join(names) + (f" (cell {cell})" if cell is not None else "") for cell, names in sources.items()]
        if imports := [b.name for b in self.blocks if b.kind == "import"]:
            parts.append(", ".join(imports))
        values = [b.name + (f" ({human_bytes(b.size)})" if b.size else "") for b in self.blocks if b.kind == "value"]
        if values:
            parts.append(", ".join(values))
        return "; ".join(parts)

    def uploads(self) -> list[tuple[bytes, str]]:
        """(pickle, path in the artifacts bucket) of the values that travel through it, for the submission."""
        return [(b.payload, b.remote) for b in self.blocks if b.payload is not None and b.remote]

    def modules(self) -> list[str]:
        """Modules the pickles need, for dependency inference (and pins) in the script."""
        return sorted({m for b in self.blocks for m in b.modules})

    def import_text(self) -> str:
        """Everything carried that imports, as Python (dependency inference reads it)."""
        lines = [f"import {m}" for m in self.modules()]
        lines += [b.code for b in self.blocks if b.kind in ("import", "source")]
        return "\n".join(lines)

    def render(self) -> str:
        """The script's carried part: imports first, then sources and values in dependency order."""
        if not self.blocks:
            return ""
        imports = [b for b in self.blocks if b.kind == "import"]
        lines = ["# carried from the notebook (--no-carry turns this off)"]
        lines += [f"import {m}  # the pickled values need it" for m in self.modules()]
        lines += [b.code + (f"  # cell {b.cell}" if b.cell is not None else "") for b in imports]
        for block in self.blocks:
            if block.kind == "source":
                lines += ["", f"# carried from cell {block.cell}: {block.name}" if block.cell is not None
                          else f"# carried: {block.name}", run_call(block.filename, block.first_line, block.code)]
            elif block.kind == "value":
                via = ", through the bucket" if block.remote else ""
                size = f" ({human_bytes(block.size)} pickled{via})" if block.size else ""
                lines.append(f"{block.code}  # carried{size}")
        return "\n".join(lines)


def run_call(filename: str, first_line: int, source: str) -> str:
    """`_hfjob_run(...)`: code compiled under its cell's name, so tracebacks show the cell's lines."""
    return f"_hfjob_run({filename!r}, {first_line}, {code_literal(source)})"


def code_literal(source: str) -> str:
    """Source as a readable string literal: a raw triple-quoted one when it can hold it."""
    text = source if source.endswith("\n") else source + "\n"
    if "'''" not in text and "\r" not in text:
        return f"r'''\n{text}'''[1:]"
    return repr(text)


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# -- the order ---------------------------------------------------------------------------------


def dependency_order(roots: Iterable[str], deps: Callable[[str], Iterable[str]]) -> list[str]:
    """Every name reachable from `roots`, each once, each after the names it depends on.

    Depth first, post-order, without recursion (a long chain of helpers must not hit the
    recursion limit). In a cycle (mutual recursion) the order within it is the visit order:
    functions only read each other when called, after all of them are defined.
    """
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for root in roots:
        if root in state:
            continue
        stack = [(root, iter(deps(root)))]
        state[root] = 1
        while stack:
            name, pending = stack[-1]
            child = next((d for d in pending if d not in state), None)
            if child is None:
                stack.pop()
                state[name] = 2
                order.append(name)
            else:
                state[child] = 1
                stack.append((child, iter(deps(child))))
    return order


def assemble(roots: Iterable[str], resolve: Callable[[str], Block | Refusal | str]) -> Carry:
    """Resolve every reachable name once; sort blocks, refusals and the names that stay unknown."""
    found: dict[str, Block | Refusal | str] = {}

    def deps(name: str) -> Iterable[str]:
        if name not in found:
            found[name] = resolve(name)
        item = found[name]
        return item.deps if isinstance(item, Block) else ()

    carry = Carry()
    direct = set(roots)
    for name in dependency_order(list(roots), deps):
        item = found[name]
        if isinstance(item, Block):
            carry.blocks.append(item)
        elif isinstance(item, Refusal):
            carry.refused.append(item)
        elif item == "kernel":
            carry.kernel_only.append(name)
        elif name not in direct:  # the cell's own unknown names are the variables check's to report
            carry.nowhere.append(name)
    return carry


def is_literal(value: Any, depth: int = 0) -> bool:
    """A value whose repr is a Python literal reading back equal: JSON-like, plus tuples."""
    kind = type(value)
    if kind in (type(None), bool, int, str):
        return True
    if kind is float:
        return math.isfinite(value)
    if depth > 20:
        return False
    if kind in (list, tuple):
        return all(is_literal(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str for k in value) and all(is_literal(v, depth + 1) for v in value.values())
    return False


def import_module_line(name: str, module: str) -> str:
    return f"import {module}" if module == name else f"import {module} as {name}"


def parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None


# -- without a kernel: the notebook's earlier cells ---------------------------------------------


@dataclass(frozen=True)
class _Definition:
    """Where a notebook name was last defined: an import, a function or class's source, a value, or the kernel."""

    kind: str  # "import", "source", "value" or "kernel"
    code: str = ""
    cell: int | None = None
    first_line: int = 1


def from_cells(names: Iterable[str], cells: Sequence[tuple[int, str]]) -> Carry:
    """Carry `names` from code cells (index, source) above the job cell; the last definition wins."""
    table = definitions(cells)

    def resolve(name: str) -> Block | Refusal | str:
        found = table.get(name)
        if found is None or name in IPYTHON_NAMES:
            return "nowhere"
        if found.kind == "kernel":
            return "kernel"
        deps = tuple(n for n in undefined_names(found.code) if n != name) if found.kind == "source" else ()
        return Block(name, found.kind, found.code, found.cell, found.first_line, deps=deps)

    return assemble(names, resolve)


def definitions(cells: Sequence[tuple[int, str]]) -> dict[str, _Definition]:
    """Every top-level name the cells bind, as the last of them binds it."""
    table: dict[str, _Definition] = {}
    for index, source in cells:
        code = _python(source)
        tree = parse(code) if code is not None else None
        if tree is None:
            continue
        lines = code.splitlines(keepends=True)  # type: ignore[union-attr]
        for statement in tree.body:
            table.update(_bindings(statement, index, lines))
    return table


def _python(source: str) -> str | None:
    """A cell as Python for reading its definitions; cell magics (and job cells) are skipped.

    Line magics, `!cmd` and `x?` define nothing that can be carried, so each such line becomes
    `pass` (an assignment from one, `x = !ls`, a value only a kernel knows): cheaper than IPython's
    transformer, and the line numbers stay.
    """
    if source.lstrip().startswith("%%"):
        return None
    if not _IPYTHON_LINE.search(source):
        return source
    return _IPYTHON_LINE.sub(lambda m: m["indent"] + (f"{m['target']}_hfjob_kernel()" if m["target"] else "pass"),
                             source)


# `%magic ...`, `!cmd`, `name?`, or `x = %magic` / `x = !cmd`, one whole line each.
_IPYTHON_LINE = re.compile(r"(?m)^(?P<indent>[ \t]*)(?P<target>[\w.]+\s*=\s*)?(?:[%!].*|[\w.]+\?\??\s*)$")


def _bindings(node: ast.stmt, cell: int, lines: list[str]) -> dict[str, _Definition]:
    if isinstance(node, ast.Import):
        return {a.asname or a.name.split(".")[0]: _Definition(
            "import", import_module_line(a.asname, a.name) if a.asname else f"import {a.name.split('.')[0]}", cell)
            for a in node.names}
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return {a.asname or a.name: _Definition(
            "import", f"from {node.module} import {a.name}" + (f" as {a.asname}" if a.asname else ""), cell)
            for a in node.names if a.name != "*"}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        code = "".join(lines[start - 1:node.end_lineno])  # what it reads is worked out only if it is carried
        return {node.name: _Definition("source", code, cell, start)}
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        literal = _literal_text(node.value)
        found = {}
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = (_Definition("value", f"{target.id} = {literal}", cell) if literal is not None
                                    else _Definition("kernel"))
        return found
    return {name: _Definition("kernel") for name in _bound_names(node)}


def _literal_text(node: ast.expr) -> str | None:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return repr(value) if is_literal(value) else None


def _bound_names(node: ast.stmt) -> set[str]:
    """Names any other statement binds at the top level (loops, with, augmented assignments, ...)."""
    found = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            found.add(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(child.name)
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            found |= {a.asname or a.name.split(".")[0] for a in child.names if a.name != "*"}
    return found

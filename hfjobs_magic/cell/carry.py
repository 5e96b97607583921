"""The carry: what a job cell reads from the notebook, made to travel inside its script.

A cell reads names it never binds (`names.undefined_names` of its one conversion). Each
becomes a block of script: a module or an imported name its import line (aliases kept), a
function or class defined in the notebook its source (and, recursively, what that source
reads), a value a literal (JSON-like) or a pickle (protocol 5, zlib, base85). Blocks come
out in dependency order, each name once. What cannot travel is refused by name, with what
to do. Two sources of truth: a live kernel namespace (`from_kernel`), or, without a kernel,
the notebook's earlier code cells read by name (`from_cells`, the last definition wins).

Pure: reads what it is given (a namespace, `linecache`, cell sources); no network.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import importlib
import importlib.util
import inspect
import io
import linecache
import math
import pickle
import re
import sys
import types
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    static: bool = False

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


def _assemble(roots: Iterable[str], resolve: Callable[[str], Block | Refusal | str], static: bool) -> Carry:
    """Resolve every reachable name once; sort blocks, refusals and the names that stay unknown."""
    found: dict[str, Block | Refusal | str] = {}

    def deps(name: str) -> Iterable[str]:
        if name not in found:
            found[name] = resolve(name)
        item = found[name]
        return item.deps if isinstance(item, Block) else ()

    carry = Carry(static=static)
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


# -- from a live kernel ------------------------------------------------------------------------


def from_kernel(names: Iterable[str], namespace: Mapping[str, Any], *, cell_files: Mapping[str, int] | None = None,
                max_bytes: int = DEFAULT_MAX_BYTES) -> Carry:
    """Carry `names` from a kernel's namespace. `cell_files` maps IPython's cell file names to their
    execution counts (`shell.compile._filename_map`), so blocks say which cell they came from."""
    resolver = _KernelResolver(namespace, dict(cell_files or {}), max_bytes)
    return _assemble(names, resolver.resolve, static=False)


class _KernelResolver:
    def __init__(self, namespace: Mapping[str, Any], cell_files: dict[str, int], max_bytes: int) -> None:
        self.ns, self.cell_files, self.max_bytes = namespace, cell_files, max_bytes
        self.inline = 0  # bytes of pickles already inside the script
        self.total = 0
        self._trees: dict[str, ast.Module | None] = {}

    def resolve(self, name: str) -> Block | Refusal | str:
        if name in IPYTHON_NAMES or name not in self.ns:
            return "nowhere"
        value = self.ns[name]
        if isinstance(value, types.ModuleType):
            return Block(name, "import", import_module_line(name, value.__name__))
        if inspect.isroutine(value) or inspect.isclass(value):
            line = import_name_line(name, value)
            if line:
                return Block(name, "import", line)
            if inspect.isfunction(value) or getattr(value, "__module__", None) == "__main__":
                return self._source(name, value)
        return self._value(name, value)

    # -- functions and classes ------------------------------------------------------------
    def _source(self, name: str, value: Any) -> Block | Refusal:
        if getattr(value, "__name__", "") == "<lambda>":
            return Refusal(name, f"{name} is a lambda, whose source cannot travel on its own",
                           f"Define it with `def {name}(...):` in a cell above, then run the job cell again.")
        if "<locals>" in getattr(value, "__qualname__", ""):
            return Refusal(name, f"{name} was defined inside a function (a closure); its variables cannot travel",
                           f"Define {name} at the top level of a cell, then run the job cell again.")
        found = self._definition(value)
        if found is None:
            return Refusal(name, f"the source of {name} is not available (defined with exec, or its cell is gone)",
                           f"Define {name} in a cell of this notebook (or in the job cell) and run it again.")
        filename, node, lines = found
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        code = _dedent("".join(lines[start - 1:node.end_lineno]))
        if node.name != name:
            code += f"{name} = {node.name}\n"
        deps = [n for n in undefined_names(code) if n != name]
        return Block(name, "source", code, self.cell_files.get(filename), start, deps=tuple(deps))

    def _definition(self, value: Any) -> tuple[str, Any, list[str]] | None:
        """(file, def node, lines) from the code objects' cells; a class without methods: the latest cell."""
        target = inspect.unwrap(value) if inspect.isfunction(value) else value
        codes = [target.__code__] if inspect.isfunction(target) else [f.__code__ for f in _methods(value)]
        for code in codes:
            node = self._find(code.co_filename, value.__name__, code.co_firstlineno)
            if node is not None:
                return code.co_filename, node, linecache.getlines(code.co_filename)
        if inspect.isclass(value):
            for filename, _ in sorted(self.cell_files.items(), key=lambda item: -item[1]):
                node = self._find(filename, value.__name__, None)
                if node is not None:
                    return filename, node, linecache.getlines(filename)
        return None

    def _find(self, filename: str, name: str, line: int | None) -> Any:
        if filename not in self._trees:
            self._trees[filename] = _parse("".join(linecache.getlines(filename)))
        tree = self._trees[filename]
        if tree is None:
            return None
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        nodes = [n for n in ast.walk(tree) if isinstance(n, kinds) and n.name == name]
        if line is None:
            top = [n for n in nodes if n in tree.body]
            return top[-1] if top else None
        return next((n for n in nodes if min([n.lineno, *(d.lineno for d in n.decorator_list)]) <= line
                     <= (n.end_lineno or n.lineno)), None)

    # -- values -----------------------------------------------------------------------------
    def _value(self, name: str, value: Any) -> Block | Refusal:
        if is_literal(value) and len(text := repr(value)) <= LITERAL_MAX_BYTES:
            return Block(name, "value", f"{name} = {text}")
        if refusal := _cannot_travel(name, value, self.max_bytes - self.total):
            return refusal
        recorder = _Recorder()
        try:
            data = recorder.dumps(value)
        except Exception as err:  # what pickle raises for an object it cannot save varies by type
            return Refusal(name, f"{name} ({_type_name(value)}) cannot be pickled: {_first_line(err)}",
                           f"Create {name} inside the job cell instead (or save it to a file and push it).")
        self.total += len(data)
        if self.total > self.max_bytes:
            return _too_big(name, len(data), self.max_bytes)
        deps, modules = tuple(recorder.main_names), tuple(sorted(recorder.modules))
        encoded = base64.b85encode(zlib.compress(data)).decode("ascii")
        if self.inline + len(encoded) > INLINE_MAX_BYTES:  # through the bucket, its hash pinned in the script
            digest = hashlib.sha256(data).hexdigest()
            path = f"{CARRY_FOLDER}/{digest}.pickle"
            return Block(name, "value", f'{name} = _hfjob_fetch("{path}", "{digest}")', size=len(data),
                         deps=deps, modules=(*modules, "huggingface_hub"), payload=data, remote=path)
        self.inline += len(encoded)
        return Block(name, "value", f'{name} = _hfjob_unpickle("{encoded}")', size=len(data), deps=deps,
                     modules=modules)


def _methods(cls: type) -> list[Any]:
    """The functions a class body defined, looked for inside decorators, properties and descriptors."""
    found = []
    for item in vars(cls).values():
        for candidate in (item, getattr(item, "__func__", None), getattr(item, "fget", None)):
            if inspect.isfunction(candidate) and candidate.__qualname__.startswith(cls.__qualname__ + "."):
                found.append(candidate)
    return found


class _Recorder(pickle.Pickler):
    """A pickler that notes the notebook names and installed modules a pickle refers to."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        super().__init__(self._buffer, protocol=PICKLE_PROTOCOL)
        self.main_names: list[str] = []
        self.modules: set[str] = set()

    def dumps(self, value: Any) -> bytes:
        self.dump(value)
        return self._buffer.getvalue()

    def persistent_id(self, obj: Any) -> None:
        """Called for every object saved; classes and functions are saved by reference: note where they live."""
        if not (isinstance(obj, type) or inspect.isroutine(obj)):
            return None
        module = getattr(obj, "__module__", None) or ""
        top = module.split(".")[0]
        if module == "__main__":
            name = obj.__qualname__.split(".")[0]
            if name not in self.main_names:
                self.main_names.append(name)
        elif top and top not in sys.stdlib_module_names and top != "builtins" and _importable(top):
            self.modules.add(top)
        return None


@functools.cache
def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cannot_travel(name: str, value: Any, room: int) -> Refusal | None:
    """Refusals known before pickling: a GPU tensor, a generator, an open file or socket, far too big."""
    device = str(getattr(value, "device", ""))
    if getattr(value, "is_cuda", False) is True or device.startswith("cuda"):
        return Refusal(name, f"{name} is a tensor on the GPU ({device or 'cuda'}); the job has its own GPU",
                       f"Send a CPU copy: {name} = {name}.cpu() in a cell above (and .cuda() it in the job).")
    if isinstance(value, (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType)):
        return Refusal(name, f"{name} is a {_type_name(value)}, which cannot be pickled",
                       f"Turn it into a list in a cell above ({name} = list({name})) or create it in the job cell.")
    if isinstance(value, io.IOBase) or _type_name(value).startswith(("socket", "_thread", "sqlite3")):
        return Refusal(name, f"{name} ({_type_name(value)}) is an open file, connection or lock, bound to this "
                       "machine", f"Open or create {name} inside the job cell instead.")
    size = getattr(value, "nbytes", None)
    if isinstance(size, int) and size > room:
        return _too_big(name, size, room)
    return None


def _too_big(name: str, size: int, limit: int) -> Refusal:
    return Refusal(name, f"{name} is {human_bytes(size)}, over what can be carried "
                   f"({human_bytes(max(limit, 0))} left of %config HFJobMagics.carry_max_bytes)",
                   f"Push {name} to the Hub (a dataset repo or a bucket) and load it in the job cell, or raise "
                   "%config HFJobMagics.carry_max_bytes.")


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


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


def import_name_line(name: str, value: Any) -> str | None:
    """`from collections import Counter as C` for something importable from an installed module."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not module or not qualname or module in ("__main__", "builtins") or "." in qualname:
        return None
    for where in dict.fromkeys([module.split(".")[0], module]):
        try:
            if getattr(importlib.import_module(where), qualname, None) is value:
                return f"from {where} import {qualname}" + (f" as {name}" if name != qualname else "")
        except Exception:  # an importable-looking module that fails to import is simply not used
            continue
    return None


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None


def _dedent(code: str) -> str:
    import textwrap

    return textwrap.dedent(code)


# -- without a kernel: the notebook's earlier cells ---------------------------------------------


@dataclass(frozen=True)
class _Definition:
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

    return _assemble(names, resolve, static=True)


def definitions(cells: Sequence[tuple[int, str]]) -> dict[str, _Definition]:
    """Every top-level name the cells bind, as the last of them binds it."""
    table: dict[str, _Definition] = {}
    for index, source in cells:
        code = _python(source)
        tree = _parse(code) if code is not None else None
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

"""The carry from a live kernel: each name the cell reads, looked up in the kernel's namespace.

A module or an importable name becomes its import line; a function or class defined in the
notebook its source, found from its code objects' cells in `linecache` (IPython keeps every cell
there) or, for a class without methods, the latest cell defining it; a value a literal or a
pickle. What cannot travel is a `Refusal` naming it and saying what to do.
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
import pickle
import sys
import textwrap
import types
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from hfjobs_magic.cell.carry import (
    CARRY_FOLDER,
    DEFAULT_MAX_BYTES,
    INLINE_MAX_BYTES,
    LITERAL_MAX_BYTES,
    PICKLE_PROTOCOL,
    Block,
    Carry,
    Refusal,
    assemble,
    human_bytes,
    import_module_line,
    is_literal,
    parse,
)
from hfjobs_magic.cell.names import IPYTHON_NAMES, undefined_names


def from_kernel(names: Iterable[str], namespace: Mapping[str, Any], *, cell_files: Mapping[str, int] | None = None,
                max_bytes: int = DEFAULT_MAX_BYTES) -> Carry:
    """Carry `names` from a kernel's namespace. `cell_files` maps IPython's cell file names to their
    execution counts (`shell.compile._filename_map`), so blocks say which cell they came from."""
    resolver = _KernelResolver(namespace, dict(cell_files or {}), max_bytes)
    return assemble(names, resolver.resolve)


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
        code = textwrap.dedent("".join(lines[start - 1:node.end_lineno]))
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
            self._trees[filename] = parse("".join(linecache.getlines(filename)))
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



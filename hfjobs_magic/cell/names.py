"""Names in a cell: which it reads but never binds (or reads before it binds them), and where its
lines went in the script.

symtable sees scopes as Python does (comprehensions, globals, class bodies), so "used but
defined nowhere" has no false alarm from a name bound in some inner scope; a walk in the order
top-level code runs finds `df = df.dropna()`.
"""

from __future__ import annotations

import ast
import builtins
import symtable
from collections.abc import Iterator

# Builtins a notebook has and a script gets from the generated prologue (display shim, get_ipython stub).
_SCRIPT_NAMES = frozenset({"display", "get_ipython", "__file__", "__builtins__", "__annotations__"})
# Names IPython binds in every kernel: never the user's variables, never carried.
IPYTHON_NAMES = frozenset({"In", "Out", "_ih", "_oh", "_dh", "_", "__", "___", "_i", "_ii", "_iii", "exit", "quit"})


def undefined_names(source: str) -> dict[str, int]:
    """Names the code reads but binds nowhere, or before it binds them (nor are builtins) -> first line; {} if
    it does not parse (or nests too deeply to walk)."""
    try:
        table = symtable.symtable(source, "<cell>", "exec")
        tree = ast.parse(source)
        early = _read_before_bound(tree)
    except (SyntaxError, ValueError, RecursionError):
        return {}
    if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(tree)):
        return {}  # a star import may define anything
    unbound = _globals_read(table) - _globals_bound(table)
    missing = (unbound | early) - set(dir(builtins)) - _SCRIPT_NAMES
    first: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in missing:
            first[node.id] = min(first.get(node.id, node.lineno), node.lineno)
    return dict(sorted(first.items(), key=lambda item: item[1]))


def _tables(table: symtable.SymbolTable) -> Iterator[symtable.SymbolTable]:
    yield table
    for child in table.get_children():
        yield from _tables(child)


def _globals_read(top: symtable.SymbolTable) -> set[str]:
    read = {s.get_name() for s in top.get_symbols() if s.is_referenced()}
    for table in list(_tables(top))[1:]:
        read |= {s.get_name() for s in table.get_symbols() if s.is_referenced() and s.is_global()}
    return read


def _globals_bound(top: symtable.SymbolTable) -> set[str]:
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    for table in list(_tables(top))[1:]:
        bound |= {s.get_name() for s in table.get_symbols() if s.is_declared_global() and s.is_assigned()}
    return bound


def _read_before_bound(tree: ast.Module) -> set[str]:
    """Names the top-level code reads before any line above binds them (`df = df.dropna()`, `n += 1`): in
    the kernel they meant the notebook's value, so they travel with the cell like names it never binds."""
    order = _RunOrder()
    order.visit(tree)
    return order.early


class _RunOrder(ast.NodeVisitor):
    """Walks top-level code in the order Python runs it: a value before the targets it is stored in, a
    loop's iterable before its target. Function and class bodies run later (when called), so only what is
    evaluated at definition (decorators, defaults, bases) counts; a read guarded by `except NameError` is
    the cell checking on purpose."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.early: set[str] = set()
        self._guarded = 0

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            self.bound.add(node.id)
        elif node.id not in self.bound and not self._guarded:
            self.early.add(node.id)

    def _visit_in_order(self, *nodes: ast.AST | list | None) -> None:
        for node in nodes:
            for item in node if isinstance(node, list) else [node]:
                if item is not None:
                    self.visit(item)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._visit_in_order(node.value, node.targets)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._visit_in_order(node.value, node.annotation, node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):  # `n += 1` reads n first
            self.visit(ast.Name(node.target.id, ast.Load()))
        self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self._visit_in_order(node.value, node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self._visit_in_order(node.iter, node.target, node.body, node.orelse)

    visit_AsyncFor = visit_For

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self._visit_in_order(node.iter, node.target, node.ifs)

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self._visit_in_order(node.generators, node.elt)

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_in_order(node.generators, node.key, node.value)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._visit_in_order(node.decorator_list, node.args.defaults, node.args.kw_defaults)
        self.bound.add(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_in_order(node.args.defaults, node.args.kw_defaults)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_in_order(node.decorator_list, node.bases, node.keywords)
        self.bound.add(node.name)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        self.bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)

    visit_ImportFrom = visit_Import

    def visit_Try(self, node: ast.Try) -> None:
        guarded = any(_catches_name_error(handler.type) for handler in node.handlers)
        self._guarded += guarded
        self._visit_in_order(node.body)
        self._guarded -= guarded
        self._visit_in_order(node.handlers, node.orelse, node.finalbody)

    visit_TryStar = visit_Try

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self._visit_in_order(node.type)
        if node.name:
            self.bound.add(node.name)
        self._visit_in_order(node.body)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        self._visit_in_order(node.pattern)
        if node.name:
            self.bound.add(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bound.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self._visit_in_order(node.keys, node.patterns)
        if node.rest:
            self.bound.add(node.rest)


def _catches_name_error(kind: ast.expr | None) -> bool:
    names = kind.elts if isinstance(kind, ast.Tuple) else [kind]
    return any(isinstance(n, ast.Name) and n.id == "NameError" for n in names)


EXACT_DIFF_LINES = 2000  # above this many differing lines, the diff may skip very common lines (autojunk)


def line_opcodes(a: list[str], b: list[str]) -> list[tuple[str, int, int, int, int]]:
    """`SequenceMatcher(None, a, b).get_opcodes()`, fast on huge cells: the lines both share at the start
    and at the end are matched without diffing (a diff of 20,000 equal lines is quadratic)."""
    import difflib

    head = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    tail = next((i for i, (x, y) in enumerate(zip(reversed(a[head:]), reversed(b[head:]), strict=False)) if x != y),
                min(len(a), len(b)) - head)
    mid_a, mid_b = a[head:len(a) - tail], b[head:len(b) - tail]
    exact = max(len(mid_a), len(mid_b)) <= EXACT_DIFF_LINES
    codes = [("equal", 0, head, 0, head)] if head else []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=not exact).get_opcodes():
        codes.append((tag, i1 + head, i2 + head, j1 + head, j2 + head))
    if tail:
        codes.append(("equal", len(a) - tail, len(a), len(b) - tail, len(b)))
    return codes


def line_mapper(cell: str, body: str) -> dict[int, int]:
    """Body line -> cell line, where the script's body dropped or moved lines of the cell."""
    cell_lines = [s.strip() for s in cell.splitlines()]
    body_lines = [s.strip() for s in body.splitlines()]
    mapping: dict[int, int] = {}
    for _tag, i1, i2, j1, j2 in line_opcodes(body_lines, cell_lines):
        for offset, i in enumerate(range(i1, i2)):
            mapping[i + 1] = j1 + min(offset, max(j2 - j1 - 1, 0)) + 1
    return mapping

"""The tree reads like the data path: each stage imports only what comes before it (DESIGN.md section 2).

Type-only imports (`if TYPE_CHECKING:`) are annotations, not dependencies, and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hfjobs_magic"

# stage -> the stages of ours it must never import, lazily or not
FORBIDDEN = {
    "cell": {"checks", "remote", "jobs", "views", "sandbox", "magics", "commands", "cli"},
    "remote": {"cell", "checks", "jobs", "views", "sandbox", "magics", "commands", "cli"},
    "checks": {"jobs", "views", "sandbox", "magics", "commands", "cli"},
    "jobs": {"checks", "sandbox", "magics", "commands", "cli"},
    "views": {"checks", "remote", "sandbox", "magics", "commands", "cli"},
    "sandbox": {"cell", "checks", "jobs", "views", "magics", "commands", "cli"},
    "server": {"checks", "views", "sandbox", "magics", "commands", "cli"},
}


def runtime_imports(tree: ast.Module) -> set[str]:
    """Every `hfjobs_magic.<first part>` imported, outside `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hfjobs_magic":
            parts = node.module.split(".")
            found.update([parts[1]] if len(parts) > 1 else [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("hfjobs_magic."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_no_stage_imports_a_later_one(stage: str) -> None:
    offenders = []
    for path in sorted((PACKAGE / stage).glob("**/*.py")):
        wrong = runtime_imports(ast.parse(path.read_text(encoding="utf-8"))) & FORBIDDEN[stage]
        offenders += [f"{path.relative_to(PACKAGE)} imports hfjobs_magic.{name}" for name in sorted(wrong)]
    assert not offenders, "\n".join(offenders)


def test_the_rule_sees_lazy_imports() -> None:
    """A function-level import counts: that is how the magic defers heavy modules."""
    tree = ast.parse("def f():\n    from hfjobs_magic.checks import run_checks\n")
    assert runtime_imports(tree) == {"checks"}
    typed = ast.parse("if TYPE_CHECKING:\n    from hfjobs_magic.cell.spec import JobSpec\n")
    assert runtime_imports(typed) == set()


def test_every_stage_says_what_it_does_and_may_import() -> None:
    for stage in FORBIDDEN:
        doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "import" in doc.lower(), f"{stage}/__init__.py needs a docstring naming what it may import"

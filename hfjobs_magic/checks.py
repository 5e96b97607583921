"""Pre-submission checks: one function per check id, each returning a `CheckResult`.

Checks never render and never submit. Ids and result shape are a public
contract (DESIGN.md section 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hfjobs_magic.hub import HubClient
    from hfjobs_magic.script import JobScript
    from hfjobs_magic.spec import JobSpec

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: str
    message: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class CheckContext:
    """Everything a check may look at; `variables` is None when there is no kernel."""

    spec: JobSpec
    script: JobScript
    cell: str
    client: HubClient | None = None
    variables: Mapping[str, Any] | None = None
    notebook_dir: Path = field(default_factory=Path.cwd)
    max_cost_usd: float | None = None


def check_script(ctx: CheckContext) -> CheckResult:
    """The generated script compiles and holds no IPython-only syntax."""
    try:
        compile(ctx.script.body, "<cell>", "exec")
    except SyntaxError as err:
        return CheckResult("script", FAIL, f"line {err.lineno}: {err.msg}", "Fix the syntax error in the cell.")
    if ctx.script.ipython_only:
        return CheckResult(
            "script", FAIL, "; ".join(ctx.script.ipython_only),
            "Replace IPython syntax (%magics, !commands) with plain Python (e.g. subprocess.run).",
        )
    return CheckResult("script", OK, "the cell compiles as a plain Python script")


CHECKS = (check_script,)


def run_checks(ctx: CheckContext) -> list[CheckResult]:
    return [check(ctx) for check in CHECKS]


def failing(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == FAIL]

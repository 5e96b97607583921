"""A check's outcome: the shape every stage after the checklist reads (DESIGN.md section 4, "Check ids").

A leaf module of its own so that views and the runner can show results without importing the checks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
CHECK_IDS = ("token", "secrets", "push_target", "persistence", "flavor", "timeout", "script", "dependencies",
             "variables")


@dataclass(frozen=True)
class CheckResult:
    """One line of the checklist; `id` is a public contract (CI filters on it)."""

    id: str
    status: str
    message: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def failing(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == FAIL]

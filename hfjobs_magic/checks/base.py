"""What every check shares: the context type (public) and the facts checks read.

The result type lives in `hfjobs_magic.checkresult` (views read results and must not import
checks); `hfjobs_magic.checks` re-exports the public names: import them from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfjobs_magic.cell.scan import CellScan, Push
from hfjobs_magic.checkresult import CHECK_IDS, FAIL, OK, SKIP, WARN, CheckResult
from hfjobs_magic.checks.buckets import BucketUse
from hfjobs_magic.checks.lookups import DEADLINE_S, Lookups
from hfjobs_magic.checks.targets import Account, Target, Verdict

if TYPE_CHECKING:
    from hfjobs_magic.cell.script import JobScript
    from hfjobs_magic.cell.spec import JobSpec
    from hfjobs_magic.remote.hub import HubClient

__all__ = ["CHECK_IDS", "FAIL", "OK", "SKIP", "WARN", "CheckContext", "CheckResult", "Facts", "result"]

RETRY_FIX = "Check the connection to the Hub (HF_ENDPOINT), then Re-check."


@dataclass
class CheckContext:
    """Everything a check may look at; `variables` is None when there is no kernel.

    `script` is None when the cell could not become a script; `build_error` then says why.
    """

    spec: JobSpec
    script: JobScript | None
    cell: str
    client: HubClient | None = None
    variables: Mapping[str, Any] | None = None
    notebook_dir: Path = field(default_factory=Path.cwd)
    max_cost_usd: float | None = None
    build_error: str | None = None
    deadline_s: float = DEADLINE_S
    first_line: int = 1  # the number the cell's first line has where the user reads it (2 under %%hfjob)


@dataclass
class Facts:
    """What every check reads: the context, the cell's scan, the push targets, the Hub's answers."""

    ctx: CheckContext
    scan: CellScan
    lines: dict[int, int]  # script body line -> cell line
    targets: list[Target]
    found: Lookups
    account: Account | None
    buckets: dict[str, list[BucketUse]] = field(default_factory=dict)  # HF bucket id -> where the job uses it

    @property
    def spec(self) -> JobSpec:
        return self.ctx.spec

    @property
    def hub_pushes(self) -> list[Push]:
        return [p for p in self.scan.pushes if p.kind == "hub"]

    @property
    def pushes_to_hub(self) -> bool:
        """The job writes to the Hub (a repo or an HF bucket), so it needs HF_TOKEN."""
        to_buckets = self.spec.push_kind == "bucket" or any(p.kind == "bucket" for p in self.scan.saves)
        return bool(self.hub_pushes) or self.spec.push_kind == "hub" or to_buckets

    def line(self, body_line: int) -> int:
        return self.lines.get(body_line, body_line + self.ctx.first_line - 1)


def result(check_id: str, verdict: Verdict) -> CheckResult:
    return CheckResult(check_id, verdict.status, verdict.message, verdict.fix)

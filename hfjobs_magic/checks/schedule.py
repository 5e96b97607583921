"""The `schedule` check of a `--schedule` cell: the expression parses, when the next runs come, and
what a month of runs costs at worst (every run lasting its whole timeout)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hfjobs_magic.cell.cron import CronError, iso, next_runs, runs_per_month
from hfjobs_magic.checks.base import FAIL, OK, WARN, CheckResult
from hfjobs_magic.money import usd
from hfjobs_magic.remote import hardware
from hfjobs_magic.remote.hardware import SERVER_TIMEOUT_S

if TYPE_CHECKING:
    from hfjobs_magic.checks.base import Facts


def check_schedule(f: Facts) -> CheckResult:
    expression = f.spec.schedule or ""
    try:
        upcoming = next_runs(expression, 3)
        per_month = runs_per_month(expression)
    except CronError as err:
        return CheckResult("schedule", FAIL, str(err), "Fix --schedule, e.g. --schedule @daily.")
    when = ", ".join(iso(moment) for moment in upcoming)
    seconds = f.spec.timeout_seconds or SERVER_TIMEOUT_S
    flavor = _flavor(f)
    if flavor is None:
        return CheckResult("schedule", WARN, f"{expression}: next runs {when}; {per_month} runs a month at an "
                           f"unknown price ({f.spec.flavor!r} has none)", "Use a known --flavor.")
    monthly = per_month * flavor.usd_per_hour * seconds / 3600
    message = (f"{expression}: next runs {when}; {per_month} runs a month, worst case {usd(monthly)}/month "
               f"({usd(flavor.usd_per_hour)}/h, each run up to {seconds // 60} min)")
    cap = f.ctx.max_cost_usd
    if cap is not None and flavor.usd_per_hour * seconds / 3600 > cap:
        return CheckResult("schedule", FAIL, f"{message}: one run may cost more than max_cost_usd ({usd(cap)})",
                           "Shorten --timeout, pick a cheaper flavor, or raise %config HFJobMagics.max_cost_usd.")
    if f.spec.timeout_seconds is None:
        return CheckResult("schedule", WARN, f"{message}; no --timeout, so each run may last 30 minutes",
                           "Add --timeout with the time one run needs.")
    return CheckResult("schedule", OK, message)


def _flavor(f: Facts) -> hardware.Flavor | None:
    from hfjobs_magic.checks.checklist import flavor_table

    return flavor_table(f)[0].get(f.spec.flavor) or hardware.BY_NAME.get(f.spec.flavor)

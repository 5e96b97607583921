"""`--schedule` expressions as the Hub takes them: `@hourly`, `@daily`, ... or five cron fields, in UTC.

Parsed with `cronsim` (which has no `@` aliases: they are spelled out here), so the checklist can
say when the runs come and what a month of them costs before anything is scheduled.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import islice

ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@hourly": "0 * * * *"}
SYNTAX = "use @hourly, @daily, @weekly, @monthly, @yearly or five cron fields, e.g. '0 3 * * *' (03:00 UTC daily)"
MONTH = timedelta(days=30)
MAX_COUNTED = 50_000  # runs counted per month at most (every minute is 43,200)


class CronError(ValueError):
    """An expression the Hub would refuse; the message says what to write instead."""


def cron_fields(expression: str) -> str:
    """The five cron fields an expression stands for."""
    text = expression.strip()
    return ALIASES.get(text.lower(), text)


def runs(expression: str, after: datetime | None = None):
    """The run times after `after` (default now), in UTC, as an iterator."""
    from cronsim import CronSim, CronSimError

    start = (after or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(second=0, microsecond=0)
    fields = cron_fields(expression)
    if expression.strip().startswith("@") and fields == expression.strip():
        raise CronError(f"unknown schedule {expression!r}: {SYNTAX}")
    try:
        return CronSim(fields, start)
    except CronSimError as err:
        raise CronError(f"{expression!r} is not a valid schedule ({err}): {SYNTAX}") from None


def next_runs(expression: str, count: int = 3, after: datetime | None = None) -> list[datetime]:
    return list(islice(runs(expression, after), count))


def runs_per_month(expression: str, after: datetime | None = None) -> int:
    """How many runs the next 30 days hold (capped at `MAX_COUNTED`)."""
    start = after or datetime.now(timezone.utc)
    end = start + MONTH
    count = 0
    for moment in runs(expression, start):
        if moment > end or count >= MAX_COUNTED:
            break
        count += 1
    return count


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")

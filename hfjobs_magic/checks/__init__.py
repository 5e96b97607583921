"""The pre-submission checklist: one function per check id, each returning a `CheckResult`.

Reads the cell's one scan (`JobScript.scan`), asks the Hub everything at once under one deadline
(lookups), then judges each check on those facts (checklist, code, credentials, targets). Checks never
render and never submit. May import `cell`, `remote` and the top-level leaves (`checkresult`, `mask`,
`errors`); never `jobs` or `views`.
"""

from hfjobs_magic.checks.checklist import (
    CHECK_IDS,
    FAIL,
    OK,
    SKIP,
    WARN,
    CheckContext,
    CheckResult,
    check_dependencies,
    check_flavor,
    check_persistence,
    check_push_target,
    check_script,
    check_secrets,
    check_timeout,
    check_token,
    check_variables,
    context_for,
    failing,
    line_error_results,
    run_checks,
    usd,
    worst_case_cost,
)

__all__ = [
    "CHECK_IDS",
    "FAIL",
    "OK",
    "SKIP",
    "WARN",
    "CheckContext",
    "CheckResult",
    "check_dependencies",
    "check_flavor",
    "check_persistence",
    "check_push_target",
    "check_script",
    "check_secrets",
    "check_timeout",
    "check_token",
    "check_variables",
    "context_for",
    "failing",
    "line_error_results",
    "run_checks",
    "usd",
    "worst_case_cost",
]

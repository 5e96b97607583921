"""Pre-submission checks: one function per check id, each returning a `CheckResult`.

Checks never render and never submit. Ids and result shape are a public contract
(DESIGN.md section 4). `run_checks` reads the cell's one scan (`JobScript.scan`), asks the Hub
everything it needs at once under one deadline (`lookups`), then runs each check on
those facts; a look-up that could not be made is a warn that says so, never an ok.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfjobs_magic.cell.names import line_mapper
from hfjobs_magic.cell.scan import GPU_LIBRARIES, Push, mask_tokens, scan
from hfjobs_magic.checkresult import failing
from hfjobs_magic.checks.base import (
    CHECK_IDS,
    FAIL,
    OK,
    RETRY_FIX,
    SKIP,
    WARN,
    CheckContext,
    CheckResult,
    Facts,
    result,
)
from hfjobs_magic.checks.buckets import bucket_verdict, collect_buckets, repo_volume_verdict, repo_volumes, written
from hfjobs_magic.checks.code import check_dependencies, check_script, check_variables
from hfjobs_magic.checks.credentials import secret_findings
from hfjobs_magic.checks.lookups import Answer, Lookups, gather
from hfjobs_magic.checks.targets import (
    Account,
    Target,
    Verdict,
    collect_targets,
    id_verdict,
    judge,
    unchecked_pushes,
    worst,
)
from hfjobs_magic.money import usd
from hfjobs_magic.remote import hardware
from hfjobs_magic.remote.hardware import SERVER_TIMEOUT_S, worst_case_cost

if TYPE_CHECKING:
    from hfjobs_magic.cell.script import Carrier
    from hfjobs_magic.cell.spec import JobSpec
    from hfjobs_magic.remote.hub import HubClient

__all__ = [
    "CHECK_IDS", "FAIL", "OK", "SKIP", "WARN", "CheckContext", "CheckResult", "check_dependencies", "check_flavor",
    "check_persistence", "check_push_target", "check_script", "check_secrets", "check_timeout", "check_token",
    "check_variables", "context_for", "failing", "run_checks", "usd", "worst_case_cost",
]

NO_TOKEN_FIX = "Run `hf auth login` or set HF_TOKEN, then Re-check."


def context_for(cell: str, spec: JobSpec, *, client: HubClient | None = None,
                variables: Mapping[str, Any] | None = None, notebook: str | None = None,
                notebook_dir: Path | None = None, max_cost_usd: float | None = None,
                first_line: int = 1, carrier: Carrier | None = None) -> CheckContext:
    """Build the script and the context; a cell that cannot become a script is reported, not raised.

    `first_line` is the number of the cell body's first line where the user reads it (2 under %%hfjob).
    """
    from IPython.core.error import UsageError

    from hfjobs_magic.cell.script import build_script

    # Without a kernel, --vars names get placeholders: the script is only read, never submitted.
    shown = variables if variables is not None else dict.fromkeys(spec.vars)
    script, error = None, None
    try:
        script = build_script(cell, spec, variables=shown, notebook=notebook, first_line=first_line, carrier=carrier)
    except UsageError as err:
        error = str(err)
    folder = notebook_dir or (Path(notebook).parent if notebook else Path.cwd())
    return CheckContext(spec, script, cell, client, variables, folder, max_cost_usd, build_error=error,
                        first_line=first_line)


def collect_facts(ctx: CheckContext) -> Facts:
    body = ctx.script.body if ctx.script else ctx.cell
    found_scan = ctx.script.scan if ctx.script else scan(ctx.cell)  # no script: read what the user wrote
    lines = {b: c + ctx.first_line - 1 for b, c in line_mapper(ctx.cell, body).items()}
    targets = collect_targets(ctx.spec, found_scan, lines)
    queries = [q for t in targets if _checkable(t) for q in t.lookups()]
    queries += [(v.source, v.type) for v in repo_volumes(ctx.spec)]
    buckets = [ctx.spec.push] if ctx.spec.push and ctx.spec.push_kind in ("s3", "gs") else []
    hf_buckets = collect_buckets(ctx.spec, found_scan, lines)
    found = gather(ctx.client, queries, ctx.deadline_s, buckets=buckets, hf_buckets=list(hf_buckets))
    return Facts(ctx, found_scan, lines, targets, found, _account(found), hf_buckets)


def _account(found: Lookups) -> Account | None:
    """The account whoami describes; an answer we cannot read counts as no answer (a warn)."""
    if not found.whoami.ok:
        return None
    try:
        return Account.from_whoami(found.whoami.value)
    except (KeyError, TypeError, AttributeError) as err:
        found.whoami = Answer(failure=f"unexpected whoami answer ({type(err).__name__})")
        return None


def _checkable(target: Target) -> bool:
    verdict = id_verdict(target, None)
    return verdict is None or verdict.status != FAIL


# -- token ---------------------------------------------------------------------------------------


def check_token(f: Facts) -> CheckResult:
    """A token exists, the Hub accepts it, and it may write where the job pushes."""
    client = f.ctx.client
    if client is None or not client.token:
        return CheckResult("token", FAIL, "no Hugging Face token here: the job could not push anything", NO_TOKEN_FIX)
    who = f.found.whoami
    if who.rejected_token:
        return CheckResult("token", FAIL, "the Hub rejected your token (HTTP 401): it is invalid, expired or revoked",
                           "Log in again with `hf auth login`, or set HF_TOKEN to a new token "
                           "from https://huggingface.co/settings/tokens.")
    if f.account is None:
        return CheckResult("token", WARN, f"could not verify your token: {who.failure}", RETRY_FIX)
    return _token_rights(f, f.account)


def _token_rights(f: Facts, account: Account) -> CheckResult:
    role = {"read": "read-only", "write": "write", "fineGrained": "fine-grained"}.get(account.role or "", "unknown")
    problems = [f"{p} ({t.repo_id})" for t in f.targets if t.namespace
                and (p := account.token_problem(t.namespace, t.repo_id))]
    problems += [f"{p} (bucket {b})" for b in written(f.buckets) if (p := account.token_problem(b.split("/")[0], b))]
    if account.role == "read" and f.pushes_to_hub and not problems:
        problems = ["your token is read-only (the cell pushes to the Hub)"]
    fix = ("Create a write token (or give this one repo.write) at https://huggingface.co/settings/tokens "
           "and log in with it: `hf auth login`.")
    if problems:
        return CheckResult("token", FAIL, f"logged in as {account.name}, but {'; '.join(problems)}", fix)
    job_ns = f.spec.namespace
    if job_ns and job_ns not in account.namespaces:
        return CheckResult("token", FAIL, f"--namespace {job_ns}: you ({account.name}) are not a member, "
                           "so the job cannot run there", f"Use one of {', '.join(account.namespaces)}, "
                           "or drop --namespace.")
    enough = "; enough, this cell pushes nothing to the Hub" if account.role == "read" else ""
    return CheckResult("token", OK, f"logged in as {account.name} ({role} token){enough}")


# -- secrets ----------------------------------------------------------------------------------------


def check_secrets(f: Facts) -> CheckResult:
    """HF_TOKEN reaches the job as a secret; no token literal anywhere; cloud writes carry credentials."""
    found = secret_findings(f)
    if found:
        return result("secrets", worst(found))
    names = ", ".join(f.spec.secret_names)
    if not names:
        return CheckResult("secrets", OK, "no secrets passed, and none needed: nothing here pushes to the Hub")
    return CheckResult("secrets", OK, f"passed as secrets, never as text: {names}")


# -- push target --------------------------------------------------------------------------------------


def check_push_target(f: Facts) -> CheckResult:
    """Every repo the job pushes to: a valid id, a namespace you can write to, the right repo type."""
    verdicts = [_named(t, judge(t, f.account, f.found.whoami, f.found.repos)) for t in f.targets]
    verdicts += [Verdict(WARN, f"{text}; it was not checked", _dynamic_fix(push, f.account))
                 for push, text in unchecked_pushes(f.scan, f.lines)]
    if (orphan := _orphan_push_flag(f)) is not None:
        verdicts.append(orphan)
    verdicts += [_bucket_verdict(url, answer) for url, answer in f.found.buckets.items()]
    verdicts += [bucket_verdict(b, f.buckets[b], f.account, f.found.whoami, f.found.hf_buckets[b])
                 for b in written(f.buckets)]
    if verdicts:
        return result("push_target", worst(verdicts) if len(verdicts) > 1 else verdicts[0])
    others = sorted({p.kind for p in f.scan.saves if p.kind != "hub"} | ({f.spec.push_kind} - {None, "hub"}))
    if others:
        return CheckResult("push_target", OK, f"no Hub repo to check; results go to {', '.join(others)}")
    if f.spec.allow_no_push:
        return CheckResult("push_target", OK, "no Hub repo to check: you chose to keep nothing (--allow-no-push)")
    return CheckResult("push_target", WARN, "no push target: neither --push nor the cell names a Hub repo",
                       'Add --push user/name (with --outputs DIR), or push in the cell: ds.push_to_hub("user/name").')


def _bucket_verdict(url: str, answer: Answer) -> Verdict:
    """An S3/GCS push target: reachable with the credentials the job will get, or why not."""
    if not answer.ok:
        return Verdict(WARN, f"{url}: could not check the bucket ({answer.failure})",
                       "Check the bucket exists and your credentials reach it, then Re-check.")
    reachable, message = answer.value
    if reachable:
        return Verdict(OK, message)
    return Verdict(FAIL, message, "Set the credentials for this bucket here (they are passed to the job as "
                   "secrets) and check the bucket name, then Re-check.")


def _named(target: Target, verdict: Verdict) -> Verdict:
    if target.repo_id in verdict.message:
        return verdict
    return Verdict(verdict.status, f"{target.repo_id}: {verdict.message}", verdict.fix)


def _dynamic_fix(push: Push, account: Account | None) -> str:
    you = account.name if account else "your-username"
    if push.implicit:
        return f'Name the repo: hub_model_id="{you}/my-model" in the training arguments (or --push {you}/my-model).'
    return f'Pass the repo id as a literal string ("{you}/name") or declare it with --push.'


def _orphan_push_flag(f: Facts) -> Verdict | None:
    """`--push X` without --outputs while every push of the cell names other repos: X gets nothing."""
    if f.spec.push_kind != "hub" or f.spec.outputs or any(p.dynamic for p in f.hub_pushes):
        return None
    saved = {p.repo_id for p in f.hub_pushes if p.saves}
    if f.spec.push in saved or not saved:
        return None
    return Verdict(WARN, f"--push {f.spec.push} receives nothing: the cell pushes to {', '.join(sorted(saved))}",
                   f"Declare the repo the cell pushes to: --push {sorted(saved)[0]}.")


# -- persistence --------------------------------------------------------------------------------------


def check_persistence(f: Facts) -> CheckResult:
    """Something in the job saves its results outside the container, which is deleted when it ends."""
    ways = _outputs_way(f)
    ways += [f"--volume {v.text} keeps what the job writes under {v.mount_path}" for v in f.spec.volumes
             if v.type == "bucket" and not v.read_only]
    ways += [_saving(p, f) for p in f.scan.saves]
    if f.spec.returns:
        ways.append(f"--return {','.join(f.spec.returns)} comes back to this notebook")
    if ways:
        more = f" (and {len(ways) - 3} more)" if len(ways) > 3 else ""
        return CheckResult("persistence", OK, "results leave the job: " + "; ".join(ways[:3]) + more)
    if f.scan.syntax_error is not None:
        return CheckResult("persistence", WARN, "not checked: the cell is not valid Python", "Fix the cell first.")
    message = "nothing in this cell saves its results outside the job; they will be deleted when it ends"
    if f.spec.allow_no_push:
        return CheckResult("persistence", WARN, f"{message}: you chose to keep nothing (--allow-no-push)",
                           "Drop --allow-no-push and push the results if you will need them.")
    if f.spec.push:
        message += f" (--push {f.spec.push} names a target, but nothing writes to it)"
    return CheckResult("persistence", FAIL, message, _persistence_fix(f))


def _outputs_way(f: Facts) -> list[str]:
    if f.spec.outputs_mount is not None:
        return [f"--outputs {f.spec.outputs} is the bucket {f.spec.push}, mounted in the job (kept even if the job "
                "is killed)"]
    return [f"--outputs {f.spec.outputs} is pushed to {f.spec.push}"] if f.spec.outputs and f.spec.push else []


def _saving(push: Push, f: Facts) -> str:
    where = f"{push.call} (line {f.line(push.line)})"
    places = {"s3": "S3", "gcs": "Google Cloud Storage", "http": "an HTTP endpoint",
              "bucket": f"bucket {push.repo_id}" if push.repo_id else "an HF bucket"}
    if push.kind != "hub":
        return f"{where} writes to {places[push.kind]}"
    return f"{where} pushes to {push.repo_id}" if push.repo_id else f"{where} pushes to the Hub"


def _persistence_fix(f: Facts) -> str:
    you = f.account.name if f.account else "your-username"
    target = f.spec.push if f.spec.push_kind == "hub" else f"{you}/job-results"
    return (f"Write the results to a folder and add --outputs results --push {target} --repo-type dataset; "
            f'or push them in the cell, e.g. HfApi().upload_folder(folder_path="results", repo_id="{target}", '
            'repo_type="dataset"); or add --allow-no-push to accept losing them.')


# -- flavor and timeout -----------------------------------------------------------------------------------


def flavor_table(f: Facts) -> tuple[dict[str, hardware.Flavor], str | None]:
    """The live hardware list when the Hub gave it, else the built-in table and why."""
    answer = f.found.hardware
    if answer.ok and answer.value:
        return {fl.name: fl for fl in answer.value}, None
    return dict(hardware.BY_NAME), answer.failure or "the Hub returned an empty list"


def check_flavor(f: Facts) -> CheckResult:
    """A known flavor (a typo names the closest ones), and a GPU only when the cell uses one."""
    table, offline = flavor_table(f)
    name = f.spec.flavor
    flavor = table.get(name)
    if flavor is None:
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        fix = f"--flavor {close[0]}" if close else f"Use one of: {', '.join(table)}."
        return CheckResult("flavor", FAIL, f"unknown flavor {name!r}{hint}", fix)
    described = describe_flavor(flavor)
    found = []
    if flavor.is_gpu and not f.scan.syntax_error and not set(f.scan.imports) & GPU_LIBRARIES:
        found.append(Verdict(WARN, f"{described}, but the cell imports no GPU library (torch, transformers, jax, "
                             "...): you would pay for an idle GPU",
                             "Use --flavor cpu-basic, or import the library that uses the GPU."))
    if not flavor.is_gpu and f.scan.gpu_code:
        use = f.scan.gpu_code[0]
        found.append(Verdict(WARN, f"{name} has no GPU, but the cell uses one ({use.text} on line {f.line(use.line)}):"
                             " it would fail or crawl on CPU", "Pick a GPU flavor, e.g. --flavor t4-small or "
                             "--flavor a10g-small."))
    if offline:
        found.append(Verdict(WARN, f"{'' if found else described + '; '}found in the built-in table, as the live "
                             f"hardware list could not be fetched ({offline})", RETRY_FIX))
    return result("flavor", worst(found)) if found else CheckResult("flavor", OK, described)


def describe_flavor(flavor: hardware.Flavor) -> str:
    gpu = f", {flavor.gpu_count}x {flavor.gpu_model} {flavor.vram}" if flavor.is_gpu else ""
    return f"{flavor.name} ({flavor.pretty_name}: {flavor.cpu}, {flavor.ram} RAM{gpu}) at {usd(flavor.usd_per_hour)}/h"


def check_timeout(f: Facts) -> CheckResult:
    """A timeout is set (the server stops jobs after 30 min), and the worst-case cost stays under the cap."""
    seconds = f.spec.timeout_seconds
    flavor = flavor_table(f)[0].get(f.spec.flavor) or hardware.BY_NAME.get(f.spec.flavor)
    worst_cost = flavor.usd_per_hour * (seconds or SERVER_TIMEOUT_S) / 3600 if flavor else None
    cost = (f"worst case {usd(worst_cost)} ({f.spec.flavor} at {usd(flavor.usd_per_hour)}/h)" if flavor
            else f"worst case unknown (no price for {f.spec.flavor!r})")
    cap = f.ctx.max_cost_usd
    if cap is not None and worst_cost is not None and worst_cost > cap:
        longest = int(cap / flavor.usd_per_hour * 3600) if flavor and flavor.usd_per_hour else 0
        return CheckResult("timeout", FAIL, f"{cost} is above max_cost_usd ({usd(cap)})",
                           f"Shorten the run (--timeout {human_duration(longest)} at most), pick a cheaper flavor, "
                           "or raise %config HFJobMagics.max_cost_usd.")
    if seconds is None:
        return CheckResult("timeout", WARN, f"no --timeout: the server stops the job after 30 minutes; {cost}",
                           "Add --timeout with the time the job needs, e.g. --timeout 2h.")
    if cap is not None and worst_cost is None:
        return CheckResult("timeout", WARN, f"stops after {human_duration(seconds)}; {cost}, so max_cost_usd "
                           "cannot be enforced", "Use a known --flavor.")
    return CheckResult("timeout", OK, f"stops after {human_duration(seconds)}; {cost}")


def human_duration(seconds: int) -> str:
    """3600 -> "1h", 5400 -> "1h30m", 90 -> "1m30s"."""
    hours, rest = divmod(max(int(seconds), 0), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "".join(parts) or "0s"


# -- script, dependencies, variables ----------------------------------------------------------------------


def check_script_and_volumes(f: Facts) -> CheckResult:
    """The script check, and the read-only volumes (repos and buckets): they must exist to be mounted."""
    script = check_script(f)
    verdicts = [repo_volume_verdict(v, f.found.repos.get((v.source, v.type), Answer(failure="not asked")))
                for v in repo_volumes(f.spec)]
    verdicts += [bucket_verdict(b, uses, f.account, f.found.whoami, f.found.hf_buckets[b])
                 for b, uses in f.buckets.items() if b not in written(f.buckets)]
    if not verdicts:
        return script
    volumes = worst(verdicts)
    if volumes.status == OK and script.status == OK:
        mounted = "; ".join(v.message for v in verdicts)
        return CheckResult("script", OK, f"{script.message}; {mounted}")
    merged = worst([Verdict(script.status, script.message, script.fix), volumes])
    return result("script", merged)


# -- running them ---------------------------------------------------------------------------------------------

CHECKS: tuple[tuple[str, Callable[[Facts], CheckResult]], ...] = (
    ("token", check_token),
    ("secrets", check_secrets),
    ("push_target", check_push_target),
    ("persistence", check_persistence),
    ("flavor", check_flavor),
    ("timeout", check_timeout),
    ("script", check_script_and_volumes),
    ("dependencies", check_dependencies),
    ("variables", check_variables),
)


# The check a flag concerns, when parsing the %%hfjob line finds its value wrong (DESIGN.md "Check ids");
# a flag no other check owns, an unknown flag or an unclosed quote fails `script`.
FLAG_CHECKS = {"--timeout": "timeout", "--flavor": "flavor", "--push": "push_target", "--repo-type": "push_target",
               "--card": "push_target", "--outputs": "persistence", "--sync-every": "persistence",
               "--secrets": "secrets", "--no-token": "token", "--namespace": "token", "--vars": "variables",
               "--with": "dependencies", "--python": "dependencies", "--return": "persistence",
               "--pull": "persistence", "--cancel-if-idle": "timeout"}
LINE_FIX = "Fix the flags (see %%hfjob? for every flag)."


def line_error_results(err: Exception) -> list[CheckResult]:
    """An invalid %%hfjob line as a whole checklist: the check its flag concerns fails (CI filters by id);
    every other check is skipped, as nothing could be judged without the line."""
    owner = FLAG_CHECKS.get(getattr(err, "flag", None) or "", "script")
    failed = CheckResult(owner, FAIL, f"the %%hfjob line is invalid: {mask_tokens(str(err))}", LINE_FIX)
    return [failed if check_id == owner else CheckResult(check_id, SKIP, "not checked: the %%hfjob line is invalid")
            for check_id in CHECK_IDS]


def run_checks(ctx: CheckContext) -> list[CheckResult]:
    """Every check, in the order of CHECK_IDS (then `schedule` for a --schedule cell); the Hub is asked once."""
    facts = collect_facts(ctx)
    checks = CHECKS
    if ctx.spec.schedule:
        from hfjobs_magic.checks.schedule import check_schedule

        checks += (("schedule", check_schedule),)
    return [_masked(_safely(check_id, check, facts)) for check_id, check in checks]


def _masked(result: CheckResult) -> CheckResult:
    """A token typed into a flag or the cell is never echoed back by a message."""
    return CheckResult(result.id, result.status, mask_tokens(result.message), mask_tokens(result.fix))


def _safely(check_id: str, check: Callable[[Facts], CheckResult], facts: Facts) -> CheckResult:
    """A bug in one check is a warn naming it, not a crash of the magic."""
    try:
        return check(facts)
    except Exception as err:
        if os.environ.get("HFJOB_DEBUG_CHECKS") == "1":
            raise
        return CheckResult(check_id, WARN, f"this check could not run ({type(err).__name__}: {mask_tokens(str(err))})",
                           "Please report it; the other checks still apply.")

"""One job cell from checks to outcome: consent, submission, following, views.

The magic builds a `JobRequest` (pure data) and hands it here. Unattended runs
follow the job in the calling thread and raise on failure; interactive runs
return at once and let the widget and the watcher thread carry on.
"""

from __future__ import annotations

import os
import queue
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hfjobs_magic.cell.prologue import ARTIFACTS_ENV
from hfjobs_magic.cell.returns import ARTIFACTS_BUCKET, new_plan
from hfjobs_magic.cell.spec import JobSpec, bucket_parts
from hfjobs_magic.checkresult import FAIL, CheckResult, failing
from hfjobs_magic.errors import HfJobCheckError, HfJobError, HfJobFailed, HfJobNotConfirmed
from hfjobs_magic.jobs.delivery import PLANS, collect_returns, plan_for, pull_outputs
from hfjobs_magic.jobs.history import Entry, History
from hfjobs_magic.jobs.keys import ReturnKeys
from hfjobs_magic.jobs.record import JobRecord, PushTarget, Update, apply_job_info, unpushed
from hfjobs_magic.mask import hide_token_literals
from hfjobs_magic.remote import storage
from hfjobs_magic.remote.hub import LABEL_TOOL, HubClient, Submission, hub_errors
from hfjobs_magic.views.bundle import RecordDisplay

if TYPE_CHECKING:
    from hfjobs_magic.cell.returns import ReturnPlan
    from hfjobs_magic.cell.script import JobScript
    from hfjobs_magic.jobs.guards import Guards
    from hfjobs_magic.jobs.watch import JobWatch

FAILED_TAIL = 20
_NO_SPEC = JobSpec()  # for attaching: no --pull, returns named on the attach line
SCHEDULED = "SCHEDULED"  # the stage a --schedule cell's record shows: nothing runs now


@dataclass(frozen=True)
class JobRequest:
    """A job cell, ready to run: what the magic built, handed to the runner as data."""

    spec: JobSpec
    script: JobScript
    checks: list[CheckResult]
    notebook: str | None
    cell_hash: str
    recheck: Callable[[], list[CheckResult]] | None = None  # re-runs the checks, e.g. after a login
    cell_targets: tuple[tuple[str, str], ...] = ()  # (repo_id, repo_type) the cell's own code pushes to


@dataclass(frozen=True)
class RunSettings:
    """How this kernel runs jobs: unattended or not, and the %config that shapes following them."""

    headless: bool
    cancel_on_interrupt: bool = False
    log_lines: int = 40
    idle_gpu_warn_s: float = 600.0
    queue_wait_warn_s: float = 300.0

    def guards(self, spec: JobSpec | None) -> Guards:
        from hfjobs_magic.jobs.guards import Guards

        return Guards(queue_warn_s=self.queue_wait_warn_s, idle_gpu_warn_s=self.idle_gpu_warn_s,
                      cancel_if_idle_s=spec.cancel_if_idle_s if spec is not None else None)


def consent_given(spec: JobSpec) -> bool:
    """--yes, or `%config HFJobMagics.auto_confirm` (a default of --yes), or HFJOB_YES=1 for a whole run."""
    return bool(spec.yes or os.environ.get("HFJOB_YES") == "1")


def label_value(text: str) -> str:
    """Labels stay short and plain so every server accepts them."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:63] or "unnamed"


def checks_table(results: list[CheckResult]) -> str:
    icons = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
    lines = []
    for r in results:
        lines.append(f"  [{icons.get(r.status, r.status)}] {r.id}: {r.message}")
        if r.fix and r.status in ("warn", FAIL):
            lines.append(f"         fix: {r.fix}")
    return "\n".join(lines)


def readable_script(text: str) -> str:
    """The script for reading: the --outputs wrapper it carries (always the same) stands as one line."""
    from hfjobs_magic.cell.wrapping import persist_source

    source = persist_source()
    lines = source.count("\n")
    text = text.replace(source, f"\n# ... {lines} lines of hfjobs_magic/cell/persist.py, the --outputs wrapper ...\n")
    return _LONG_PICKLE.sub(lambda m: f'_hfjob_unpickle("{m[1][:40]}... {len(m[1])} characters of base85")', text)


_LONG_PICKLE = re.compile(r'_hfjob_unpickle\("([^"]{120,})"\)')  # a carried value: its bytes are not for reading


def check_error(results: list[CheckResult]) -> HfJobCheckError:
    bad = failing(results)
    ids = ", ".join(r.id for r in bad)
    return HfJobCheckError(f"{len(bad)} check(s) failed ({ids}); nothing was submitted.\n{checks_table(bad)}",
                           [r.id for r in bad])


def resolve_secrets(spec: JobSpec, client: HubClient) -> dict[str, str]:
    """Secret values to send: literals from the flags, else the local environment (HF_TOKEN: our token).

    An S3 or GCS push target also gets the credentials set here, whether or not --secrets names them.
    """
    secrets: dict[str, str] = {}
    for name, value in spec.secrets.items():
        resolved = value if value is not None else (client.token if name == "HF_TOKEN" else os.environ.get(name))
        if resolved:
            secrets[name] = storage.secret_value(name, resolved)
    return storage.job_secrets(spec.push_kind) | secrets


def build_submission(request: JobRequest, client: HubClient, plan: ReturnPlan | None = None,
                     artifacts: str | None = None) -> Submission:
    """The job: the script, its flags, for --return where the values go and the key that signs them, and the
    bucket holding carried values too big for the script."""
    spec = request.spec
    extra_env = (plan.env() if plan else {}) | ({ARTIFACTS_ENV: artifacts} if artifacts else {})
    labels = {LABEL_TOOL: "1", "hfjob-cell": request.cell_hash, **spec.labels}
    if request.notebook:
        labels["hfjob-notebook"] = label_value(os.path.basename(request.notebook))
    return Submission(
        namespace=spec.namespace or client.username(),
        script=request.script.text,
        image=spec.image,
        flavor=spec.flavor,
        timeout_seconds=spec.timeout_seconds,
        # print() reaches the live log at once; an S3/GCS target's endpoint and region come along
        env={"PYTHONUNBUFFERED": "1", **storage.job_env(spec.push_kind), **spec.env, **extra_env},
        secrets=resolve_secrets(spec, client) | (plan.secrets() if plan else {}),
        labels={k: label_value(v) for k, v in labels.items()} | ({"name": spec.name} if spec.name else {}),
        volumes=tuple(volume.as_volume() for volume in spec.job_volumes),
    )


def new_record(info: Any, request: JobRequest | None, client: HubClient, log_lines: int) -> JobRecord:
    record = JobRecord(
        id=info.id,
        namespace=info.owner.name,
        url=info.url,
        flavor=str(info.flavor or "cpu-basic"),
        usd_per_hour=client.price_per_hour(str(info.flavor or "cpu-basic")),
        tail_lines=log_lines,
    )
    apply_job_info(record, info)
    if request is not None:
        record.notebook, record.cell = request.notebook, request.cell_hash
        spec = request.spec
        if spec.push:
            kind = spec.push_kind if spec.push_kind in (*storage.SCHEMES, "bucket") else spec.repo_type or "model"
            record.push.append(PushTarget(spec.push, kind))
        record.push += [PushTarget(repo_id, repo_type, declared=False) for repo_id, repo_type in request.cell_targets]
    return record


class Runner:
    def __init__(self, client: Callable[[], HubClient], history: History, settings: RunSettings,
                 deliver: Callable[[dict[str, Any]], None] | None = None) -> None:
        """`deliver` sets returned values (the kernel's namespace update)."""
        self._client, self.history, self.settings = client, history, settings
        self.keys = ReturnKeys(history.path)
        self.deliver = deliver or (lambda values: None)

    @property
    def client(self) -> HubClient:
        """The current client: a login between Re-check and Submit gives a new one."""
        return self._client()

    # -- entry point -------------------------------------------------------------------
    def run(self, request: JobRequest) -> JobRecord | None:
        if request.spec.dry_run:
            print(hide_token_literals(readable_script(request.script.text)))
            print("Checks:\n" + checks_table(request.checks))
            return None
        if self.settings.headless:
            return self._run_headless(request)
        self._run_interactive(request)
        return None

    # -- unattended -----------------------------------------------------------------------
    def _run_headless(self, request: JobRequest) -> JobRecord:
        from hfjobs_magic.views.text import TextView

        print("[hfjob] checks:\n" + checks_table(request.checks), flush=True)
        if failing(request.checks):
            raise check_error(request.checks)
        if not consent_given(request.spec):
            raise HfJobNotConfirmed(
                "All checks passed, but this unattended run has no consent to start a paid job. "
                "Add --yes to the %%hfjob line, set HFJOB_YES=1, or run "
                "%config HFJobMagics.auto_confirm = True."
            )
        if request.spec.schedule:
            return self._schedule_headless(request)
        record = self.submit(request)
        text, display = TextView(), RecordDisplay()
        text.started(record.as_json())
        display.show(record.as_json())
        if request.spec.detach:
            print(f"[hfjob] detached; follow it with %hfjob_attach {record.id}")
            return record
        return self.follow_here(record, request, text, display)

    def follow_here(self, record: JobRecord, request: JobRequest | None, text: Any, display: RecordDisplay,
                    follow_logs: bool = True) -> JobRecord:
        """Follow in this thread (so output lands in this cell and Ctrl-C works) until the job ends."""
        updates: queue.Queue[Update] = queue.Queue()
        watch = self._watch(record, updates.put, request, follow_logs=follow_logs)
        try:
            while True:
                update = updates.get()
                text.update(update)
                display.update(update.record, force=update.final)
                if update.final:
                    break
        except KeyboardInterrupt:
            watch.stop()
            text.end_line()
            self._interrupted(record)
            raise
        self._raise_if_failed(record, allow_no_push=request is None or request.spec.allow_no_push)
        if request is not None:
            for line in self.bring_back(record, request.spec):
                print(f"[hfjob] {line}", flush=True)
            display.update(record.as_json(), force=True)
        return record

    def bring_back(self, record: JobRecord, spec: JobSpec, returns: tuple[str, ...] = ()) -> list[str]:
        """After a COMPLETED job: set the --return values in the kernel, download --pull files; what was done."""
        if record.stage != "COMPLETED":
            return []
        done = []
        names = returns or spec.returns
        if names:
            done.append(collect_returns(self.client, record, plan_for(record, names, self.keys), self.deliver))
        if spec.pull and spec.push:
            done.append("pulled " + pull_outputs(self.client, spec, record))
        return done

    def _interrupted(self, record: JobRecord) -> None:
        if self.settings.cancel_on_interrupt:
            self.client.cancel(record.id, record.namespace)
            print(f"[hfjob] interrupted: job {record.id} was cancelled.")
            return
        print(f"[hfjob] interrupted: stopped following; job {record.id} is still running.\n"
              f"        reattach with %hfjob_attach {record.id}, cancel with %hfjob_cancel {record.id}")

    @staticmethod
    def _raise_if_failed(record: JobRecord, allow_no_push: bool) -> None:
        """A job that did not COMPLETE fails the cell; so does one whose declared target got nothing."""
        lost = [t["repo_id"] for t in unpushed(record.as_json())]
        if record.stage == "COMPLETED" and (allow_no_push or not lost):
            return
        if record.stage == "COMPLETED":
            why = (f"COMPLETED, but nothing reached {', '.join(lost)}: its results were lost with the job. Write the "
                   "files to the --outputs folder (or push them in the cell), or add --allow-no-push if that is "
                   "expected")
        else:
            why = f"ended {record.stage}" + (f": {record.message}" if record.message else "")
            why += "".join(f"\npush to {t.where} FAILED: {t.failure}" for t in record.push if t.failure)
        tail = "\n".join(record.log_tail[-FAILED_TAIL:])
        raise HfJobFailed(f"Job {record.id} {why}\n{record.url}\n--- last log lines ---\n{tail}",
                          job_id=record.id, stage=record.stage)

    # -- interactive -----------------------------------------------------------------------
    def _run_interactive(self, request: JobRequest) -> None:
        from hfjobs_magic.money import usd
        from hfjobs_magic.remote.hardware import worst_case_cost
        from hfjobs_magic.views.widgets import JobWidget

        widget = JobWidget(log_lines=self.settings.log_lines, action="Schedule" if request.spec.schedule else "Submit")
        cost = worst_case_cost(request.spec, self.client)
        widget.show_checks(request.checks, worst_case=usd(cost) if cost is not None else "")
        widget.display()
        # Made now, while the cell runs: a display first made from the Submit click would reach no cell.
        display = RecordDisplay()
        display.reserve()
        widget.on_submit(lambda: self._start_interactive(request, widget, display))
        if request.recheck is not None:
            widget.on_recheck(request.recheck)
        if request.spec.yes and not failing(request.checks):
            widget.submit()

    def _start_interactive(self, request: JobRequest, widget: Any, display: RecordDisplay) -> None:
        """Submit, then let a watcher thread feed the widget and the notebook's record (the cell has returned)."""
        if request.spec.schedule:
            record = self.schedule(request)
            display.show(record.as_json())
            widget.scheduled(record.as_json())
            return
        record = self.submit(request)
        display.show(record.as_json())
        widget.started(record.as_json())
        if request.spec.detach:
            widget.detached(record.id)
            return

        def on_update(update: Update) -> None:
            if update.final:
                update = Update(self._after_interactive(record, request), update.lines, final=True)
            widget.update(update)
            display.update(update.record, force=update.final)

        self._watch(record, on_update, request)
        widget.on_cancel(lambda: self.client.cancel(record.id, record.namespace))

    def _after_interactive(self, record: JobRecord, request: JobRequest) -> dict[str, Any]:
        """The watcher's last step: bring results back; a refusal becomes the record's message (the cell is done)."""
        try:
            self.bring_back(record, request.spec)
        except HfJobError as err:
            record.message = str(err)
        return record.as_json()

    # -- reattaching ---------------------------------------------------------------------------
    def attach(self, job: str, namespace: str | None, returns: tuple[str, ...] = ()) -> JobRecord:
        """The live view of a job again: followed if it runs, replayed in full if it ended."""
        from hfjobs_magic.jobs.joblist import about_job, resolve
        from hfjobs_magic.views.text import TextView

        ref = resolve(self.client, self.history, job, namespace)
        with about_job(self.client, ref, "cannot attach to"):
            info = self.client.inspect(ref.id, ref.namespace)
        entry = self.history.find(ref.id)
        record = new_record(info, None, self.client, self.settings.log_lines)
        if entry is not None:
            record.notebook, record.cell = entry.notebook, entry.cell
        display = RecordDisplay()
        display.show(record.as_json())
        if self.settings.headless or returns:
            text = TextView()
            text.started(record.as_json())
            record = self.follow_here(record, None, text, display, follow_logs=not record.final)
            for line in self.bring_back(record, _NO_SPEC, returns):
                print(f"[hfjob] {line}", flush=True)
            display.update(record.as_json(), force=True)
            return record
        from hfjobs_magic.views.widgets import JobWidget

        widget = JobWidget(log_lines=self.settings.log_lines)
        widget.display()
        widget.started(record.as_json())

        def on_update(update: Update) -> None:
            widget.update(update)
            display.update(update.record, force=update.final)

        self._watch(record, on_update, None, follow_logs=not record.final)
        if not record.final:
            widget.on_cancel(lambda: self.client.cancel(record.id, record.namespace))
        return record

    # -- shared -----------------------------------------------------------------------------
    def submit(self, request: JobRequest) -> JobRecord:
        with hub_errors(self.client, "the job was not submitted"):
            plan, artifacts = self._artifacts(request)
            submission = build_submission(request, self.client, plan, artifacts)
            if request.spec.push_kind == "bucket" and request.spec.push:
                # a volume must exist before the job is created; the cell may write the bucket without creating it
                self.client.ensure_bucket(bucket_parts(request.spec.push)[0])
        with hub_errors(self.client, "the job could not be submitted",
                        unsure="If the Hub got it anyway, %hfjob_ps lists it: check before running the cell again."):
            info = self.client.submit(submission)
        record = new_record(info, request, self.client, self.settings.log_lines)
        if plan is not None:
            PLANS[record.id] = plan
            self.keys.save(record.id, plan)
        self.history.append(Entry(
            id=record.id, namespace=record.namespace, url=record.url, flavor=record.flavor,
            created=record.as_json()["created_at"], endpoint=self.client.endpoint,
            notebook=request.notebook, cell=request.cell_hash,
        ))
        return record

    def _artifacts(self, request: JobRequest) -> tuple[ReturnPlan | None, str | None]:
        """The private bucket for --return (a plan with its key) and for carried values too big for the script,
        uploaded now; (None, None) when the job needs neither."""
        uploads = request.script.carry.uploads() if request.script.carry else []
        if not request.spec.returns and not uploads:
            return None, None
        bucket = f"{request.spec.namespace or self.client.username()}/{ARTIFACTS_BUCKET}"
        self.client.ensure_bucket(bucket)
        if uploads:
            self.client.upload_to_bucket(bucket, uploads)
        plan = new_plan(request.spec.returns, bucket.split("/")[0]) if request.spec.returns else None
        return plan, bucket if uploads else None

    def _schedule_headless(self, request: JobRequest) -> JobRecord:
        from hfjobs_magic.views.text import TextView

        record = self.schedule(request)
        RecordDisplay().show(record.as_json())
        TextView().scheduled(record.as_json())
        return record

    def schedule(self, request: JobRequest) -> JobRecord:
        """The cell as a scheduled job: the same script, secrets, flavor and timeout, run on --schedule."""
        from hfjobs_magic.cell.cron import iso, next_runs

        spec = request.spec
        with hub_errors(self.client, "the cell was not scheduled"):
            _, artifacts = self._artifacts(request)  # carried values too big for the script, for every run
            submission = build_submission(request, self.client, artifacts=artifacts)
        with hub_errors(self.client, "the cell could not be scheduled",
                        unsure="If the Hub got it anyway, %hfjob_ps --scheduled lists it."):
            info = self.client.schedule(submission, spec.schedule or "")
        record = JobRecord(id=info.id, namespace=submission.namespace, url=f"{self.client.endpoint}/jobs/"
                           f"{submission.namespace}", flavor=spec.flavor, stage=SCHEDULED, created_at=info.created_at,
                           usd_per_hour=self.client.price_per_hour(spec.flavor), notebook=request.notebook,
                           cell=request.cell_hash, tail_lines=self.settings.log_lines)
        record.schedule = {"id": info.id, "schedule": info.schedule or spec.schedule,
                           "next_runs": [iso(moment) for moment in next_runs(spec.schedule or "", 3)]}
        return record

    def _watch(self, record: JobRecord, on_update: Callable[[Update], None], request: JobRequest | None,
               follow_logs: bool = True) -> JobWatch:
        """The watcher thread of a submitted job; imported only here, so a --detach cell never loads it and a
        followed one loads it while the job starts."""
        from hfjobs_magic.jobs.watch import JobWatch

        return JobWatch(self.client, record, on_update, secrets=self._secret_values(request), follow_logs=follow_logs,
                        guards=self.settings.guards(request.spec if request else None)).start()

    def _secret_values(self, request: JobRequest | None) -> list[str]:
        values = [self.client.token or ""] + [plan.key for plan in PLANS.values()]
        if request is not None:
            values += [piece for name, value in resolve_secrets(request.spec, self.client).items()
                       for piece in storage.masked_values(name, value)]
        return [v for v in values if v]

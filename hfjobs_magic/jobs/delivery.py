"""What comes back to the notebook once a job COMPLETES: `--return` values, set in the kernel, and
`--pull` files, downloaded next to it. Nothing is set from a job that failed or from files that fail
their signature check."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hfjobs_magic.cell.returns import MANIFEST, ReturnPlan, ReturnRefused, file_name, read_manifest, verify
from hfjobs_magic.cell.spec import bucket_parts
from hfjobs_magic.errors import HfJobFailed
from hfjobs_magic.remote import storage
from hfjobs_magic.remote.hub import HubClient, hub_errors

if TYPE_CHECKING:
    from hfjobs_magic.cell.spec import JobSpec
    from hfjobs_magic.jobs.keys import ReturnKeys
    from hfjobs_magic.jobs.record import JobRecord

# job id -> its return plan, signing key included: in this kernel's memory, and in `keys` for a new kernel.
PLANS: dict[str, ReturnPlan] = {}


def plan_for(record: JobRecord, names: tuple[str, ...], keys: ReturnKeys) -> ReturnPlan:
    plan = PLANS.get(record.id) or keys.load(record.id)
    if plan is None:
        raise HfJobFailed(f"Job {record.id}: its returns are signed with a key kept where the job was submitted "
                          f"(next to that machine's job history; here it would be in {keys.folder}), and there is "
                          "none for it here. Attach from there, or run the job cell again (with --return).",
                          job_id=record.id, stage=record.stage)
    PLANS[record.id] = plan  # its key is masked in what this kernel shows from now on
    return replace(plan, names=names) if names else plan


def collect_returns(client: HubClient, record: JobRecord, plan: ReturnPlan,
                    deliver: Callable[[dict[str, Any]], None]) -> str:
    """Download, verify, then set every name at once; the line that says so. A refusal sets nothing."""
    try:
        with hub_errors(client, f"the returns of job {record.id} could not be downloaded"), \
                tempfile.TemporaryDirectory(prefix="hfjob-returns-") as folder:
            path = f"{plan.prefix}/{MANIFEST}"
            manifest = read_manifest(client.bucket_files(plan.bucket, [path], folder)[path], plan)
            paths = {name: file_name(plan, name, manifest[name]) for name in plan.names}
            found = client.bucket_files(plan.bucket, list(paths.values()), folder)
            values = verify(plan, manifest, {name: found[p] for name, p in paths.items()})
    except ReturnRefused as err:
        raise HfJobFailed(f"Job {record.id} COMPLETED, but its returns were refused: {err}",
                          job_id=record.id, stage=record.stage) from None
    deliver({r.name: r.value for r in values})
    record.returns = [r.as_json() for r in values]
    return f"{', '.join(r.name for r in values)} <- job {record.id}"


def pull_outputs(client: HubClient, spec: JobSpec, record: JobRecord) -> str:
    """The pushed --outputs files into `--pull DIR`; a one-line summary."""
    folder = os.path.abspath(spec.pull or ".")
    os.makedirs(folder, exist_ok=True)
    target = spec.push or ""
    with hub_errors(client, f"--pull could not download from {target}"):
        if spec.push_kind in storage.SCHEMES:
            files = storage.download_prefix(target, folder)
        elif spec.push_kind == "bucket":
            files = client.download_bucket_prefix(*bucket_parts(target), folder)
        else:
            files = client.download_repo(target, spec.repo_type or "model", folder)
    record.pulled = f"{len(files)} file(s) from {target} into {spec.pull}"
    return record.pulled

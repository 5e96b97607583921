"""HF buckets and job volumes in the checklist: which buckets a job writes or mounts, which repos it
mounts, and whether it can.

Pure: the Hub's answers (bucket infos, repo infos, whoami) come in as data from `lookups.gather`.
`push_target` judges the buckets a job writes; `script` the read-only volumes (flags no other check owns).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hfjobs_magic.cell.scan import CellScan, bucket_of
from hfjobs_magic.checks.lookups import Answer
from hfjobs_magic.checks.targets import TOKENS_URL, Account, Verdict, where, worst

if TYPE_CHECKING:
    from hfjobs_magic.cell.spec import JobSpec, Mount


@dataclass(frozen=True)
class BucketUse:
    """One place that names an HF bucket: `--push`, a `--volume`, or a call in the cell."""

    source: str  # "--push", "--volume hf://buckets/a/b:/data:rw", "api.sync_bucket (line 4)"
    writes: bool
    created: bool  # made when missing: by the magic (--push) or by the cell's create_bucket


def collect_buckets(spec: JobSpec, scan: CellScan, lines: Mapping[int, int] | None = None
                    ) -> dict[str, list[BucketUse]]:
    """Bucket id -> its uses, from `--push`, the bucket `--volume`s and the cell's literal bucket calls."""
    found: dict[str, list[BucketUse]] = {}
    if spec.push_kind == "bucket" and (bucket := bucket_of(spec.push)):
        found.setdefault(bucket, []).append(BucketUse("--push", writes=True, created=True))
    for volume in spec.volumes:
        if volume.type == "bucket":
            use = BucketUse(f"--volume {volume.text}", writes=not volume.read_only, created=False)
            found.setdefault(volume.source, []).append(use)
    created = {p.repo_id for p in scan.pushes if p.kind == "bucket" and p.creates}
    for push in scan.pushes:
        if push.kind == "bucket" and push.repo_id and push.saves:
            use = BucketUse(where(push, lines), writes=True, created=push.repo_id in created)
            found.setdefault(push.repo_id, []).append(use)
    return found


def written(buckets: Mapping[str, list[BucketUse]]) -> list[str]:
    return [bucket for bucket, uses in buckets.items() if any(u.writes for u in uses)]


def repo_volumes(spec: JobSpec) -> list[Mount]:
    """The model, dataset and space repos mounted read-only."""
    return [v for v in spec.volumes if v.type != "bucket"]


# -- judging -----------------------------------------------------------------------------------------


def bucket_verdict(bucket_id: str, uses: list[BucketUse], account: Account | None, whoami: Answer,
                   answer: Answer) -> Verdict:
    """The worst of: a valid id, write access where the job writes, and existence and visibility."""
    bad_id = _id_verdict(bucket_id)
    if bad_id is not None:
        return bad_id
    verdicts = [_existence(bucket_id, uses, answer)]
    if any(u.writes for u in uses):
        verdicts.append(_write_access(bucket_id, account, whoami))
    return worst([v for v in verdicts if v is not None])


def _id_verdict(bucket_id: str) -> Verdict | None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(bucket_id)
    except HFValidationError as err:
        return Verdict("fail", f"bucket {bucket_id!r} is not a valid id: {err}",
                       "Use letters, digits, '-', '_' and '.' (at most 96 characters), as namespace/name.")
    return None


def _write_access(bucket_id: str, account: Account | None, whoami: Answer) -> Verdict | None:
    namespace = bucket_id.split("/", 1)[0]
    if account is None:
        return Verdict("warn", f"could not verify write access to bucket {bucket_id} ({whoami.failure or 'no token'})",
                       "Log in (`hf auth login`) or check the connection, then Re-check.")
    problem = account.token_problem(namespace, bucket_id) or account.namespace_problem(namespace)
    if problem is None:
        return None
    fix = (f"Create a write token at {TOKENS_URL} and log in with it (`hf auth login`)." if "token" in problem
           else f"Use a bucket in a namespace you can write to: {', '.join(account.writable)}.")
    return Verdict("fail", f"{problem}: the job cannot write to bucket {bucket_id}", fix)


def _existence(bucket_id: str, uses: list[BucketUse], answer: Answer) -> Verdict:
    if not answer.ok:
        return Verdict("warn", f"could not check whether bucket {bucket_id} exists ({answer.failure})",
                       "Check the connection to the Hub, then Re-check.")
    if answer.value is None:
        return _missing(bucket_id, uses)
    if not answer.value.private and any(u.writes for u in uses):
        return Verdict("warn", f"bucket {bucket_id} is public: anyone can read what the job writes there",
                       f'Make it private: HfApi().update_bucket_settings("{bucket_id}", private=True); or keep it '
                       "public if that is what you want.")
    return Verdict("ok", f"bucket {bucket_id} exists ({'private' if answer.value.private else 'public'})")


def _missing(bucket_id: str, uses: list[BucketUse]) -> Verdict:
    if any(u.source == "--push" for u in uses):
        return Verdict("ok", f"bucket {bucket_id} does not exist yet: it is created (private) before the job starts")
    if any(u.created for u in uses):
        return Verdict("ok", f"bucket {bucket_id} does not exist yet: the cell creates it")
    sources = ", ".join(u.source for u in uses)
    return Verdict("fail", f"bucket {bucket_id} does not exist (or is private to others), and {sources} needs it",
                   f"Create it first: hf buckets create {bucket_id} --private, or check the name.")


def repo_volume_verdict(volume: Mount, answer: Answer) -> Verdict:
    """A read-only repo volume: it must exist, with that type, for the job to start."""
    if not answer.ok:
        return Verdict("warn", f"--volume {volume.text}: could not check the {volume.type} repo ({answer.failure})",
                       "Check the connection to the Hub, then Re-check.")
    if answer.value is None:
        return Verdict("fail", f"--volume {volume.text}: {volume.type} repo {volume.source} does not exist (or is "
                       "private to others): the job could not start",
                       f"Check the id and its type (hf://{volume.type}s/...), or push the data first.")
    return Verdict("ok", f"{volume.type} repo {volume.source} is mounted read-only at {volume.mount_path}")

"""The `--return` keys of jobs submitted from this machine, so that a new kernel can still verify and set
a job's returns (`%hfjob_attach JOB --return a,b` after a kernel restart).

One file per job, readable by you only (0600, in a 0700 folder next to the job history), holding the
job's return plan: never in the history itself, a record, a script or an output. Whoever can read it can
also read your Hugging Face token, which can write the bucket the returns are in: keeping the key adds no
exposure, and a restart no longer loses what a paid job returned.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hfjobs_magic.cell.returns import ReturnPlan
from hfjobs_magic.jobs.history import JOB_ID

FOLDER = "return-keys"


class ReturnKeys:
    def __init__(self, history_path: Path) -> None:
        self.folder = history_path.parent / FOLDER

    def save(self, job_id: str, plan: ReturnPlan) -> None:
        """Written right after submission, so even a kernel that dies at once leaves the key behind. A folder
        that cannot be written costs only the attach from a new kernel (its error names this folder), never
        the job that was just submitted."""
        path = self._path(job_id)
        if path is None:
            return
        data = {"names": list(plan.names), "bucket": plan.bucket, "key_id": plan.key_id, "key": plan.key}
        partial = path.with_suffix(".partial")
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
            os.replace(partial, path)
        except OSError:
            return

    def load(self, job_id: str) -> ReturnPlan | None:
        """The job's plan, or None when it was submitted elsewhere (another machine or history file)."""
        path = self._path(job_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
            return ReturnPlan(tuple(data["names"]), data["bucket"], data["key_id"], data["key"]) if data else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _path(self, job_id: str) -> Path | None:
        return self.folder / f"{job_id}.json" if JOB_ID.fullmatch(job_id) else None

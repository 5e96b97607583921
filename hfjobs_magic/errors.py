"""Exceptions a job cell raises; part of the public contract (DESIGN.md section 4)."""

from __future__ import annotations


class HfJobError(Exception):
    """Base class of every error a job cell raises on purpose."""


class HfJobCheckError(HfJobError):
    """A pre-submission check failed; nothing was submitted."""

    def __init__(self, message: str, failed_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.failed_ids = list(failed_ids or [])


class HfJobNotConfirmed(HfJobError):
    """Checks passed but an unattended run had no consent to spend money."""


class HfJobFailed(HfJobError):
    """The job was submitted and did not end COMPLETED (or pushed nothing it had to)."""

    def __init__(self, message: str, job_id: str | None = None, stage: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.stage = stage

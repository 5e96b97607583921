"""Exceptions a job cell raises; part of the public contract (DESIGN.md section 4)."""

from __future__ import annotations


class HfJobError(Exception):
    """Base class of every error a job cell raises on purpose.

    IPython shows these as their message alone: no frames from our internals, and no
    echo of the `%%hfjob` line (which could hold a secret); token literals are masked.
    """

    def _render_traceback_(self) -> list[str]:
        from hfjobs_magic.mask import hide_token_literals

        return [hide_token_literals(f"{type(self).__name__}: {self}")]


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


class HfJobHubError(HfJobError):
    """The Hub refused a request (bad token, unknown job, no right) or could not be reached."""

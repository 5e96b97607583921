"""The one place that talks to the Hub: an `HfApi(endpoint, token)` we hold, `namespace=` always passed.

Importing this module is cheap; `huggingface_hub.hf_api` is imported on first use.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from hfjobs_magic.errors import HfJobError, HfJobHubError
from hfjobs_magic.remote import hardware

if TYPE_CHECKING:
    from huggingface_hub import HfApi
    from huggingface_hub._jobs_api import JobInfo, ScheduledJobInfo

SUBMIT_LABEL = "hfjob-submit"
LABEL_TOOL = "hfjobs-magic"  # every job we start carries it, so %hfjob_ps can find them
SCRIPT_ENV = "HFJOB_SCRIPT"
SCRIPT_PATH = "${TMPDIR:-/tmp}/hfjob_cell.py"  # outside the working dir: not a result of the job
# The script travels inline in the job's environment and is written to a file by the job's shell.
JOB_COMMAND = [
    "sh",
    "-c",
    f'printf "%s\\n" "${SCRIPT_ENV}" > "{SCRIPT_PATH}" && exec uv run "{SCRIPT_PATH}"',
]
SUBMIT_ATTEMPTS = 4
REPO_TTL_S = 5.0  # a repo look-up is reused this long: the checks and a Re-check moments later ask once


@dataclass(frozen=True)
class RepoSummary:
    """What the checklist needs to know about an existing repo."""

    repo_id: str
    repo_type: str
    private: bool
    sha: str | None
    last_modified: datetime | None


@dataclass(frozen=True)
class BucketSummary:
    """What the checklist needs to know about an existing HF bucket."""

    bucket_id: str
    private: bool


@dataclass(frozen=True)
class Submission:
    """Everything a job needs; built by the magic from the spec and the script."""

    namespace: str
    script: str
    image: str
    flavor: str
    timeout_seconds: int | None
    env: dict[str, str]
    secrets: dict[str, str]
    labels: dict[str, str]
    volumes: tuple[dict[str, Any], ...] = field(default=())  # keyword arguments of `huggingface_hub.Volume`


def is_transient(err: BaseException) -> bool:
    """Server errors, rate limits and network failures are worth a retry; 4xx answers are not."""
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        return status >= 500 or status == 429
    return type(err).__module__.split(".")[0] in {"httpx", "httpx2", "httpcore", "httpcore2"} or isinstance(
        err, ConnectionError
    )


RETRY_FIRST_S, RETRY_MOST_S = 1.0, 10.0  # waits between tries of a stream: doubling, capped


def retry_transient(stop: threading.Event, attempt: Callable[[], None],
                    made_progress: Callable[[], bool] = lambda: False) -> BaseException | None:
    """Call `attempt` until it returns, `stop` is set, or it raises what is not worth a retry; that error, or None.

    The wait between tries doubles, and starts short again once `made_progress()` says the last try
    got somewhere: a stream that ran for an hour and dropped is not made to wait out an old outage.
    """
    delay = RETRY_FIRST_S
    while not stop.is_set():
        try:
            attempt()
            return None
        except Exception as err:
            delay = RETRY_FIRST_S if made_progress() else delay
            if not is_transient(err) or stop.wait(delay):
                return err
            delay = min(delay * 2, RETRY_MOST_S)
    return None


def status_of(err: BaseException) -> int | None:
    return getattr(getattr(err, "response", None), "status_code", None)


def error_line(err: BaseException, limit: int = 200) -> str:
    """An error's first line that says something; huggingface_hub puts "(Request ID: ...)" before the answer."""
    said = (line.strip() for line in str(err).splitlines())
    return next((line for line in said if line and not line.startswith("(Request ID:")), type(err).__name__)[:limit]


def hub_failure(err: BaseException, endpoint: str) -> str | None:
    """A refusal or a network failure in plain words, with what to do; None for anything else (a bug shows)."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    if isinstance(err, LocalTokenNotFoundError):
        return "there is no Hugging Face token here. Run `hf auth login` or set HF_TOKEN."
    status = status_of(err)
    if isinstance(err, HfHubHTTPError) and status is not None:
        detail = getattr(err, "server_message", None) or ""
        said = f": {detail.strip().splitlines()[0]}" if detail.strip() else ""
        if status == 401:
            return (f"the Hub rejected your token (HTTP 401{said}): it is invalid, expired or revoked. Log in "
                    "again with `hf auth login`, or set HF_TOKEN to a valid token.")
        if status == 403:
            return (f"the Hub refused it (HTTP 403{said}): your token is read-only, or you are not a member of "
                    "that user or org.")
        return f"the Hub answered HTTP {status}{said}."
    if is_transient(err):
        first = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), "no detail")
        return (f"could not reach the Hub at {endpoint} ({type(err).__name__}: {first}). Check your connection "
                "and HF_ENDPOINT, then try again.")
    return None


@contextmanager
def hub_errors(client: HubClient, doing: str, not_found: str | None = None, unsure: str = "") -> Iterator[None]:
    """Turn a Hub refusal or an unreachable Hub into one `HfJobHubError` line (no traceback of ours).

    `not_found` replaces the message of a 404 (e.g. naming the job id and its namespace); `unsure` is
    added when the request may have reached the Hub although no answer came back.
    """
    from hfjobs_magic.mask import SecretMasker, hide_token_literals

    try:
        yield
    except HfJobError:
        raise
    except Exception as err:
        message = not_found if not_found and status_of(err) == 404 else hub_failure(err, client.endpoint)
        if message is None:
            raise
        if unsure and is_transient(err):
            message += f" {unsure}"
        text = SecretMasker([client.token or ""]).mask(hide_token_literals(f"{doing}: {message}"))
        raise HfJobHubError(text) from None


def resolve_endpoint() -> str:
    """HF_ENDPOINT as set now (huggingface_hub only reads it once, at import)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def resolve_token() -> str | None:
    """HF_TOKEN, else the token stored by `hf auth login`."""
    if token := os.environ.get("HF_TOKEN"):
        return token
    from huggingface_hub import get_token

    return get_token()


class HubClient:
    """A session's link to the Hub (or the sandbox): jobs, whoami, repos, hardware."""

    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        self.endpoint = (endpoint or resolve_endpoint()).rstrip("/")
        self.token = token if token is not None else resolve_token()
        self._whoami: dict[str, Any] | None = None
        self._hardware: list[hardware.Flavor] | None = None
        self._repos: dict[tuple[str, str], tuple[float, RepoSummary | None]] = {}
        # One fetch at a time per cached thing: a warm-up thread and the checks asking at once share one answer.
        self._locks = {"whoami": threading.Lock(), "hardware": threading.Lock(), "api": threading.Lock()}

    @cached_property
    def api(self) -> HfApi:
        with self._locks["api"]:  # importing huggingface_hub.hf_api once, not racing in every thread
            from huggingface_hub import HfApi

            return HfApi(endpoint=self.endpoint, token=self.token)

    # -- identity and hardware (cached while the kernel lives: they do not change) ----------
    def whoami(self) -> dict[str, Any]:
        with self._locks["whoami"]:
            if self._whoami is None:
                self._whoami = self.api.whoami()
            return self._whoami

    def username(self) -> str:
        return self.whoami()["name"]

    def hardware(self) -> list[hardware.Flavor]:
        """The live hardware list, as our Flavor objects (cached)."""
        with self._locks["hardware"]:
            if self._hardware is None:
                self._hardware = [_flavor_from_api(h) for h in self.api.list_jobs_hardware()]
            return self._hardware

    def known_hardware(self) -> list[hardware.Flavor] | None:
        """The live hardware list if this session already fetched it; never calls the Hub."""
        return self._hardware

    def price_per_hour(self, flavor: str) -> float | None:
        """Live price when we can get it, the built-in table otherwise."""
        try:
            table = {f.name: f for f in self.hardware()}
        except Exception:
            table = hardware.BY_NAME
        found = table.get(flavor) or hardware.BY_NAME.get(flavor)
        return found.usd_per_hour if found else None

    # -- jobs ------------------------------------------------------------------------
    def submit(self, sub: Submission) -> JobInfo:
        """Create the job; retry transient failures without ever creating it twice."""
        key = uuid.uuid4().hex[:20]
        labels = {**sub.labels, SUBMIT_LABEL: key}
        delay = 0.5
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            try:
                return self._run_job(sub, labels)
            except Exception as err:
                if not is_transient(err):
                    raise
                existing = self._find_submitted(sub.namespace, key)
                if existing is not None:
                    return existing
                if attempt == SUBMIT_ATTEMPTS:
                    raise
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _run_job(self, sub: Submission, labels: dict[str, str]) -> JobInfo:
        from huggingface_hub import Volume

        return self.api.run_job(
            image=sub.image,
            command=JOB_COMMAND,
            env={**sub.env, SCRIPT_ENV: sub.script},
            secrets=sub.secrets or None,
            flavor=sub.flavor,
            timeout=sub.timeout_seconds,
            labels=labels,
            volumes=[Volume(**volume) for volume in sub.volumes] or None,
            namespace=sub.namespace,
        )

    def _find_submitted(self, namespace: str, key: str) -> JobInfo | None:
        """The job a lost answer may have created, found by the label set before submitting."""
        try:
            found = list(self.api.list_jobs(labels={SUBMIT_LABEL: key}, namespace=namespace))
        except Exception as err:
            if is_transient(err):
                return None
            raise
        return found[0] if found else None

    def inspect(self, job_id: str, namespace: str) -> JobInfo:
        return self.api.inspect_job(job_id=job_id, namespace=namespace)

    def cancel(self, job_id: str, namespace: str) -> None:
        self.api.cancel_job(job_id=job_id, namespace=namespace)

    def logs(self, job_id: str, namespace: str, *, follow: bool, tail: int | None = None) -> Iterator[str]:
        yield from self.api.fetch_job_logs(job_id=job_id, namespace=namespace, follow=follow, tail=tail)

    def list_jobs(self, namespace: str, labels: dict[str, str] | None = None) -> list[JobInfo]:
        return list(self.api.list_jobs(namespace=namespace, labels=labels))

    # -- buckets ---------------------------------------------------------------------
    def upload_to_bucket(self, bucket_id: str, files: list[tuple[bytes, str]]) -> None:
        """(bytes, path) into the bucket in one batch."""
        self.api.batch_bucket_files(bucket_id, add=files)

    def bucket_files(self, bucket_id: str, paths: list[str], folder: str) -> dict[str, bytes | None]:
        """Download `paths` of a bucket into `folder`; each path's bytes, or None when it is not there."""
        local = {path: os.path.join(folder, f"{i}.bin") for i, path in enumerate(paths)}
        self.api.download_bucket_files(bucket_id, files=list(local.items()), raise_on_missing_files=False)
        found: dict[str, bytes | None] = {}
        for path, where in local.items():
            try:
                with open(where, "rb") as handle:
                    found[path] = handle.read()
            except FileNotFoundError:
                found[path] = None
        return found

    def metrics(self, job_id: str, namespace: str) -> Iterator[dict[str, Any]]:
        """The job's metrics events, about one a second, until it ends (the client reconnects meanwhile)."""
        yield from self.api.fetch_job_metrics(job_id=job_id, namespace=namespace, follow=True)

    # -- scheduled jobs ------------------------------------------------------------------
    def schedule(self, sub: Submission, schedule: str) -> ScheduledJobInfo:
        """A scheduled job running the same inline script as `submit` would, on `schedule`."""
        return self.api.create_scheduled_job(
            image=sub.image,
            command=JOB_COMMAND,
            schedule=schedule,
            env={**sub.env, SCRIPT_ENV: sub.script},
            secrets=sub.secrets or None,
            flavor=sub.flavor,
            timeout=sub.timeout_seconds,
            labels=sub.labels,
            namespace=sub.namespace,
        )

    def scheduled_jobs(self, namespace: str) -> list[ScheduledJobInfo]:
        return list(self.api.list_scheduled_jobs(namespace=namespace))

    def unschedule(self, scheduled_job_id: str, namespace: str) -> None:
        self.api.delete_scheduled_job(scheduled_job_id=scheduled_job_id, namespace=namespace)

    # -- repos -----------------------------------------------------------------------
    def download_repo(self, repo_id: str, repo_type: str, folder: str) -> list[str]:
        """The repo's files into `folder` (`--pull`); their paths in the repo (not the Hub's .gitattributes)."""
        from huggingface_hub import snapshot_download

        files = [f for f in self.api.list_repo_files(repo_id, repo_type=repo_type) if f != ".gitattributes"]
        snapshot_download(repo_id, repo_type=repo_type, local_dir=folder, allow_patterns=files,
                          endpoint=self.endpoint, token=self.token)
        return files

    def repo_info(self, repo_id: str, repo_type: str) -> RepoSummary | None:
        """The repo when it exists and we may see it; None when it does not (or is someone's private one).

        Other failures (401 for a bad token, 5xx, network) raise, so a caller can tell
        "not there" from "could not ask". An answer is reused for `REPO_TTL_S` seconds.
        """
        key = (repo_id, repo_type)
        cached = self._repos.get(key)
        if cached is not None and time.monotonic() - cached[0] < REPO_TTL_S:
            return cached[1]
        summary = self._repo_summary(repo_id, repo_type)
        self._repos[key] = (time.monotonic(), summary)
        return summary

    def _repo_summary(self, repo_id: str, repo_type: str) -> RepoSummary | None:
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

        try:
            info = self.api.repo_info(repo_id, repo_type=repo_type)
        except GatedRepoError:  # it exists; we may not read it
            return RepoSummary(repo_id=repo_id, repo_type=repo_type, private=True, sha=None, last_modified=None)
        except RepositoryNotFoundError:
            return None
        return RepoSummary(repo_id=info.id, repo_type=repo_type, private=bool(info.private),
                           sha=info.sha, last_modified=info.last_modified)

    def commits_since(self, repo_id: str, repo_type: str, since: datetime | None) -> list[dict[str, str]]:
        """Commits on a repo newer than `since`, oldest first (empty when the repo does not exist).

        The repo's first commit is left out: creating a repo makes it, so it is never a push of results.
        """
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            commits = self.api.list_repo_commits(repo_id, repo_type=repo_type)
        except RepositoryNotFoundError:
            return []
        fresh = [c for c in commits[:-1] if since is None or c.created_at >= since]
        return [
            {"oid": c.commit_id, "title": c.title, "date": c.created_at.isoformat().replace("+00:00", "Z")}
            for c in reversed(fresh)
        ]


    # -- buckets ---------------------------------------------------------------------
    def bucket_info(self, bucket_id: str) -> BucketSummary | None:
        """The bucket when it exists and we may see it; None when it does not (other failures raise)."""
        from huggingface_hub.errors import BucketNotFoundError

        try:
            info = self.api.bucket_info(bucket_id)
        except BucketNotFoundError:
            return None
        return BucketSummary(bucket_id=info.id, private=bool(info.private))

    def ensure_bucket(self, bucket_id: str) -> None:
        """Create the bucket, private, unless it exists: a volume must exist before the job is created."""
        self.api.create_bucket(bucket_id, private=True, exist_ok=True)

    def download_bucket_prefix(self, bucket_id: str, prefix: str, folder: str) -> list[str]:
        """Every file under `prefix` into `folder`, by its path below the prefix (`--pull`); those paths."""
        from huggingface_hub import BucketFile

        found = [f for f in self.api.list_bucket_tree(bucket_id, prefix=prefix or None, recursive=True)
                 if isinstance(f, BucketFile)]
        below = {f.path: f.path[len(prefix):].lstrip("/") if prefix else f.path for f in found}
        root = os.path.realpath(folder)
        inside = {p: r for p, r in below.items()
                  if r and os.path.realpath(os.path.join(root, r)).startswith(root + os.sep)}  # never out of DIR
        for relative in inside.values():
            os.makedirs(os.path.dirname(os.path.join(root, relative)), exist_ok=True)
        self.api.download_bucket_files(bucket_id, files=[(p, os.path.join(root, r)) for p, r in inside.items()])
        return list(inside.values())

    def bucket_files_since(self, bucket_id: str, prefix: str, since: datetime | None) -> list[dict[str, Any]]:
        """Files under `prefix` written at or after `since`, oldest first: {"oid", "title", "date", "size"}.

        Asked of the bucket itself (`list_bucket_tree`, recursive), so what a killed job wrote counts too.
        """
        from huggingface_hub import BucketFile
        from huggingface_hub.errors import BucketNotFoundError

        try:
            found = list(self.api.list_bucket_tree(bucket_id, prefix=prefix or None, recursive=True))
        except BucketNotFoundError:
            return []
        files = [(f, f.uploaded_at or f.mtime) for f in found if isinstance(f, BucketFile)]
        fresh = sorted(((f, at) for f, at in files if at and (since is None or at >= since)), key=lambda p: p[1])
        return [{"oid": f.xet_hash, "title": f.path, "date": at.isoformat().replace("+00:00", "Z"), "size": f.size}
                for f, at in fresh]


def _flavor_from_api(info: Any) -> hardware.Flavor:
    accelerator = info.accelerator
    usd_per_hour = round(info.unit_cost_usd * 60, 4) if info.unit_label == "minute" else info.unit_cost_usd
    return hardware.Flavor(
        name=info.name,
        pretty_name=info.pretty_name,
        cpu=info.cpu,
        ram=info.ram,
        storage=getattr(info, "ephemeral_storage", ""),
        usd_per_hour=usd_per_hour,
        gpu_model=accelerator.model if accelerator else None,
        gpu_count=int(accelerator.quantity) if accelerator else 0,
        vram=accelerator.vram if accelerator else None,
    )

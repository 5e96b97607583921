"""The --outputs wrapper that runs inside the job: the folder reaches the push target even
when the cell raises, times out or is cancelled.

The job has no hfjobs_magic installed, so `wrapping.py` inlines this file's source in the
generated script, where it runs in a namespace of its own (a cell variable named `time` or
`signal` cannot break it). Hence: only the standard library at the top, each store imports
its client (huggingface_hub, boto3, google-cloud-storage) when it is built, and nothing from
hfjobs_magic. Lines starting with `[hfjob]` are read by the kernel's watcher (`jobs/watch.py`):
their shape is a contract.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TAG = "[hfjob]"
MANIFEST = ".hfjob-pushed"  # in the working dir: what was uploaded, read by the sandbox's lost-files report
ATTEMPTS = 4  # a final push tries this often before the job fails
SYNC_ATTEMPTS = 2  # a periodic push gives up sooner: the next one tries again
FIRST_DELAY_S = 0.5
SKIPPED_DIRS = frozenset({".git", "__pycache__"})
CARD_NAME = "README.md"


class Terminated(BaseException):
    """SIGTERM (timeout or cancel) raised in the cell, so it unwinds and the final push runs."""


class PushFailed(Exception):
    """The final push did not reach the target: the job must fail, loudly."""


def say(text: str) -> None:
    print(f"{TAG} {text}", flush=True)


def human_size(size: float) -> str:
    """Bytes the way the Hub shows them: decimal units, one decimal."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def pushed_line(count: int, size: int, where: str, ref: str | None) -> str:
    """`pushed 3 files (12.4 MB) to dataset alice/run@1a2b3c4`: the watcher parses this."""
    noun = "file" if count == 1 else "files"
    return f"pushed {count} {noun} ({human_size(size)}) to {where}" + (f"@{ref}" if ref else "")


def first_line(err: BaseException) -> str:
    """The error's kind and first line that says something: huggingface_hub starts some messages with a
    "(Request ID: ...)" line (the kernel's `remote.hub.error_line` skips it too; this file runs without us)."""
    said = (line.strip() for line in str(err).splitlines())
    text = next((line for line in said if line and not line.startswith("(Request ID:")), "")
    return f"{type(err).__name__}: {text}".rstrip(": ")


# -- what to push ----------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` (relative POSIX path) -> (size, mtime_ns)."""
    found = {}
    for dirpath, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(dirpath, name)
            try:
                stat = path.stat()
            except OSError:  # deleted while we looked: nothing to push
                continue
            found[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def changed(current: dict[str, tuple[int, int]], seen: dict[str, tuple[int, int]]) -> list[str]:
    return [name for name, state in current.items() if seen.get(name) != state]


def split_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> ("bucket", "some/prefix")."""
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    return bucket, prefix.strip("/")


def object_key(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


# -- retries -----------------------------------------------------------------------------------


def status_of(err: BaseException) -> int | None:
    """The HTTP status of a client error, whichever library raised it."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):  # botocore's ClientError
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = getattr(response, "status_code", None) or getattr(err, "code", None)
    return code if isinstance(code, int) else None


def is_transient(err: BaseException) -> bool:
    """Server errors, rate limits, timeouts and dropped connections are worth another try."""
    status = status_of(err)
    if status is not None:
        return status >= 500 or status in (408, 429)
    name = type(err).__name__
    library = type(err).__module__.split(".")[0]
    return isinstance(err, (ConnectionError, TimeoutError)) or "Connect" in name or "Timeout" in name or (
        library in ("httpx", "httpcore", "urllib3", "requests"))


def with_retries(action: Callable[[], Any], where: str, attempts: int, sleep: Callable[[float], None] = time.sleep,
                 first_delay: float = FIRST_DELAY_S) -> Any:
    """Run `action`; transient failures are retried with doubling delays, the last one raises."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as err:
            if attempt == attempts or not is_transient(err):
                raise
            say(f"push to {where} failed (attempt {attempt} of {attempts}): {first_line(err)}; "
                f"retrying in {delay:g} s")
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


# -- the stores ----------------------------------------------------------------------------------


class HubStore:
    """A Hub repo: one commit per push. HF_ENDPOINT and HF_TOKEN come from the job's environment."""

    def __init__(self, repo_id: str, repo_type: str) -> None:
        from huggingface_hub import HfApi

        self.api = HfApi()
        self.repo_id, self.repo_type = repo_id, repo_type
        self.where = f"{repo_type} {repo_id}"
        self.api.create_repo(repo_id, repo_type=repo_type, exist_ok=True)

    def upload(self, files: dict[str, Path], message: str) -> str | None:
        from huggingface_hub import CommitOperationAdd

        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in files.items()]
        info = self.api.create_commit(self.repo_id, operations, commit_message=message, repo_type=self.repo_type)
        return info.oid[:7]


class S3Store:
    """A bucket prefix on S3 (or any S3 API: AWS_ENDPOINT_URL); credentials from the environment."""

    def __init__(self, url: str) -> None:
        import boto3

        self.bucket, self.prefix = split_url(url)
        self.where = url
        self.client = boto3.client("s3")
        self.client.head_bucket(Bucket=self.bucket)

    def upload(self, files: dict[str, Path], message: str) -> str | None:
        """Object by object; each carries the push's message (naming the job) as metadata."""
        for name, path in files.items():
            self.client.upload_file(str(path), self.bucket, object_key(self.prefix, name),
                                    ExtraArgs={"Metadata": {"hfjob-push": message}})
        return None


class GCSStore:
    """A bucket prefix on Google Cloud Storage (or its emulator: STORAGE_EMULATOR_HOST)."""

    def __init__(self, url: str) -> None:
        from google.cloud import storage

        use_key_contents()
        name, self.prefix = split_url(url)
        self.where = url
        self.bucket = storage.Client().bucket(name)
        self.bucket.reload()  # fails now, not after the cell ran, when the bucket is missing or forbidden

    def upload(self, files: dict[str, Path], message: str) -> str | None:
        """Object by object; each carries the push's message (naming the job) as metadata."""
        for name, path in files.items():
            blob = self.bucket.blob(object_key(self.prefix, name))
            blob.metadata = {"hfjob-push": message}
            blob.upload_from_filename(str(path))
        return None


def use_key_contents() -> None:
    """GOOGLE_APPLICATION_CREDENTIALS arrives as the key's JSON; the Google client wants a file."""
    value = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
    if value.lstrip().startswith("{"):
        fd, path = tempfile.mkstemp(prefix="gcs-key-", suffix=".json")  # mode 0600, in the job's private TMPDIR
        with os.fdopen(fd, "w") as key:
            key.write(value)
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = path


class BucketStore:
    """An HF bucket prefix the job writes through the Hub's API (`batch_bucket_files`, Xet); used when the
    bucket is not mounted at the folder, e.g. an exported script run with `uv run` on another machine."""

    def __init__(self, url: str) -> None:
        from huggingface_hub import HfApi

        self.api = HfApi()
        parts = [p for p in url[len("hf://buckets/"):].split("/") if p]
        self.bucket_id, self.prefix = "/".join(parts[:2]), "/".join(parts[2:])
        self.where = url
        self.api.create_bucket(self.bucket_id, private=True, exist_ok=True)

    def upload(self, files: dict[str, Path], message: str) -> str | None:
        add = [(str(path), object_key(self.prefix, name)) for name, path in files.items()]
        self.api.batch_bucket_files(self.bucket_id, add=add)
        return None


class MountedBucket:
    """An HF bucket mounted at the folder: every file is in the bucket the moment it is written, so a push
    only has to place what lives elsewhere (the card). Nothing is lost when the job is killed."""

    def __init__(self, url: str, folder: Path) -> None:
        self.where, self.folder = url, folder

    def upload(self, files: dict[str, Path], message: str) -> str | None:
        for name, path in files.items():
            if not path.is_relative_to(self.folder):
                shutil.copyfile(path, self.folder / name)
        return None


def open_store(target: str, repo_type: str) -> Any:
    if target.startswith("hf://buckets/"):
        return BucketStore(target)
    if target.startswith("s3://"):
        return S3Store(target)
    if target.startswith("gs://"):
        return GCSStore(target)
    return HubStore(target, repo_type)


# -- pushing -------------------------------------------------------------------------------------


class Pusher:
    """Pushes what changed in the folder since the last push, one push at a time, and says so."""

    def __init__(self, folder: Path, store: Any, manifest: Path) -> None:
        self.folder, self.store, self.manifest = folder, store, manifest
        self.seen: dict[str, tuple[int, int]] = {}
        self.pushes = 0
        self.lock = threading.Lock()

    def push(self, reason: str, attempts: int, extra: dict[str, Path] | None = None) -> bool:
        """True when something was pushed; raises when every attempt failed."""
        with self.lock:
            current = snapshot(self.folder)
            names = changed(current, self.seen)
            if not names and not extra:
                return False
            files = {name: self.folder / name for name in names} | (extra or {})
            size = sum(current[name][0] for name in names) + sum(p.stat().st_size for p in (extra or {}).values())
            message = f"hfjob {os.environ.get('JOB_ID', 'job')}: {reason} push of {len(files)} file(s)"
            ref = with_retries(lambda: self.store.upload(files, message), self.store.where, attempts)
            self.seen.update({name: current[name] for name in names})
            self.pushes += 1
            self.record(names, current)
            say(pushed_line(len(files), size, self.store.where, ref))
            return True

    def sync(self) -> None:
        """A periodic push: a failure is reported and left to the next push."""
        try:
            self.push("sync", SYNC_ATTEMPTS)
        except Exception as err:
            say(f"push to {self.store.where} failed: {first_line(err)}; the next push tries again")

    def record(self, names: list[str], current: dict[str, tuple[int, int]]) -> None:
        """Append what was uploaded to the manifest, relative to the working dir the job started in."""
        base = self.manifest.parent
        with self.manifest.open("a", encoding="utf-8") as out:
            for name in names:
                size, mtime_ns = current[name]
                path = os.path.relpath(self.folder / name, base)
                out.write(json.dumps({"path": Path(path).as_posix(), "size": size, "mtime_ns": mtime_ns}) + "\n")


class Ticker(threading.Thread):
    """The periodic push for S3 and GCS (Hub targets use huggingface_hub's CommitScheduler)."""

    def __init__(self, pusher: Pusher, every_s: float) -> None:
        super().__init__(name="hfjob-sync", daemon=True)
        self.pusher, self.every_s = pusher, every_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            self.pusher.sync()

    def stop(self) -> None:
        self.stopped.set()


def hub_scheduler(pusher: Pusher, every_s: float) -> Any:
    """huggingface_hub's CommitScheduler (its thread and queue), committing through our pusher."""
    from huggingface_hub import CommitScheduler

    class Scheduler(CommitScheduler):
        def push_to_hub(self) -> None:  # our commit message, retries and progress line
            pusher.sync()

    store = pusher.store
    return Scheduler(repo_id=store.repo_id, repo_type=store.repo_type, folder_path=pusher.folder,
                     every=every_s / 60, hf_api=store.api)


# -- the wrapper ---------------------------------------------------------------------------------


class Outputs:
    """Around the cell: `start()` before it, `close(error)` after it, whatever happened."""

    def __init__(self, folder: str, target: str, repo_type: str = "model", every_s: float | None = None,
                 card: dict[str, str] | None = None, mount: str | None = None, workdir: str | None = None) -> None:
        self.folder, self.target, self.repo_type = Path(folder), target, repo_type
        self.every_s, self.card = every_s, card
        self.mount, self.workdir = mount, workdir  # a bucket volume at the folder, and the dir the cell runs in
        self.started = time.monotonic()
        self.closing = False
        self.pusher: Pusher | None = None
        self.sync: Any = None

    def start(self) -> Outputs:
        """Make the folder, reach the target (fail now rather than after the work), arm SIGTERM."""
        mounted = bool(self.mount) and os.path.isdir(str(self.mount))
        if mounted and self.workdir:
            os.chdir(self.workdir)  # the cell's relative --outputs folder is the mounted bucket
        self.folder = self.folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        store = MountedBucket(self.target, self.folder) if mounted else self.open_store()
        self.pusher = Pusher(self.folder, store, Path.cwd() / MANIFEST)
        signal.signal(signal.SIGTERM, self.on_sigterm)
        if self.every_s and isinstance(self.pusher.store, HubStore):
            self.sync = hub_scheduler(self.pusher, self.every_s)
        elif self.every_s:
            self.sync = Ticker(self.pusher, self.every_s)
            self.sync.start()
        every = f", and every {self.every_s:g} s" if self.every_s else ""
        if mounted:
            say(f"outputs: {self.folder.name}/ is the bucket {self.target}, mounted at {self.folder}: every file "
                "is in the bucket as soon as it is written")
        else:
            say(f"outputs: {self.folder.name}/ is pushed to {self.pusher.store.where} when the cell ends{every}")
        return self

    def open_store(self) -> Any:
        where = self.target if "://" in self.target else f"{self.repo_type} {self.target}"
        try:
            return with_retries(lambda: open_store(self.target, self.repo_type), where, ATTEMPTS)
        except Exception as err:
            say(f"push to {where} FAILED: cannot reach it before the cell runs: {first_line(err)}")
            raise PushFailed(f"cannot push to {where}: {first_line(err)}") from err

    def on_sigterm(self, signum: int, frame: Any) -> None:
        """The first SIGTERM unwinds the cell; later ones (and any during the final push) are ignored."""
        if not self.closing:
            self.closing = True
            raise Terminated("SIGTERM: the job was stopped (timeout or cancel)")

    def close(self, error: BaseException | None = None) -> None:
        """The final push; raises PushFailed when it fails, SystemExit(143) after a SIGTERM."""
        self.closing = True
        assert self.pusher is not None
        if self.sync is not None:
            self.sync.stop()
        say(f"{outcome(error)}: pushing {self.folder.name}/ to {self.pusher.store.where}")
        try:
            pushed = self.pusher.push(final_reason(error), ATTEMPTS, self.card_files(error))
        except Exception as err:
            say(f"push to {self.pusher.store.where} FAILED: {first_line(err)}")
            raise PushFailed(f"the final push to {self.pusher.store.where} failed: {first_line(err)}") from err
        if not pushed:
            say(f"nothing new to push: {self.folder.name}/ " + ("is unchanged" if self.pusher.pushes else "is empty"))
        if isinstance(error, Terminated):
            sys.exit(128 + signal.SIGTERM)

    def card_files(self, error: BaseException | None) -> dict[str, Path]:
        """With --card: a README.md describing the job, unless the folder has its own."""
        assert self.pusher is not None
        if self.card is None or (self.folder / CARD_NAME).exists():
            return {}
        if not self.pusher.pushes and not snapshot(self.folder):
            return {}  # a card alone is not a result
        fd, path = tempfile.mkstemp(prefix="hfjob-card-", suffix=".md")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(render_card(self.card, outcome(error), time.monotonic() - self.started))
        return {CARD_NAME: Path(path)}


def outcome(error: BaseException | None) -> str:
    if error is None or (isinstance(error, SystemExit) and not error.code):  # sys.exit(0) is a normal end
        return "the cell finished"
    if isinstance(error, Terminated):
        return "the job was stopped (SIGTERM: timeout or cancel)"
    return f"the cell raised {first_line(error)}"


def final_reason(error: BaseException | None) -> str:
    if outcome(error) == "the cell finished":
        return "final"
    return "final (stopped)" if isinstance(error, Terminated) else "final (after an error)"


def render_card(card: dict[str, str], ended: str, seconds: float) -> str:
    """The README.md: which job made these files, on what hardware, from which notebook cell, with what script."""
    minutes, secs = divmod(int(seconds), 60)
    rows = [("Job", os.environ.get("JOB_ID", "unknown")), ("Flavor", card.get("flavor", "")),
            ("Duration", f"{minutes}m{secs:02d}s"), ("Ended", ended),
            ("Notebook", card.get("notebook") or "unknown"), ("Cell", card.get("cell", ""))]
    table = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows)
    script = Path(sys.argv[0]).read_text(encoding="utf-8") if Path(sys.argv[0]).is_file() else ""
    return (f"# Results of a Hugging Face job\n\nPushed by hfjobs-magic (`%%hfjob --outputs --card`).\n\n"
            f"| | |\n|---|---|\n{table}\n\n## The script\n\n````python\n{script}````\n")

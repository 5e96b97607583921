"""Jobs as local process groups: the job store and the runner of each job's process.

A job runs its command on the host (the image is not pulled) in a fresh temporary
directory deleted when it ends, like an ephemeral container. Its stdout and
stderr become its log (see `joblog`). Records persist as JSON under `root`, so a
finished job can be inspected after a restart; secret values never touch disk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets as secrets_lib
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

from hfjobs_magic.sandbox.joblog import LineSplitter, LogBook, utc_now_iso
from hfjobs_magic.sandbox.volumes import Volumes

log = logging.getLogger(__name__)

TERMINAL_STAGES = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
SECRET_MASK = "********"
DEFAULT_TIMEOUT_S = 30 * 60  # the Hub's default when a job asks for none
STOPPED_MESSAGE = "The sandbox stopped while the job was running"
LOST_MESSAGE = "The sandbox restarted while the job was running; the job was lost and its processes killed"
HELD_MESSAGE = "Waiting for hardware (the sandbox's hold_scheduling fault keeps new jobs queued)"
WORKDIR_PREFIX = "hfjob-work-"
POLL_S = 0.2  # how often a quiet job is checked for exit, timeout and cancel
READ_BYTES = 1 << 16
START_WAIT_S = 2.0  # how long creating a job waits for its process to start
STRAGGLER_S = 1.0  # after the main process exits, how long an escaped child may hold the pipe
LOST_FILES_SHOWN = 20
BESIDE_VOLUMES = "beside-volumes"  # folders a job's mount paths need, e.g. /hfjob above /hfjob/ckpt
PUSH_MANIFEST = ".hfjob-pushed"  # written by the --outputs wrapper (hfjobs_magic/cell/persist.py)
# Host variables a job inherits: locale, certificates, proxies, package indexes, GPUs.
# Nothing else, so no token or HF_* setting of the host leaks into a job.
_INHERITED = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR",
              "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PYENV_ROOT", "PYENV_VERSION", "SYSTEMROOT"}
_INHERITED_PREFIXES = ("LC_", "UV_", "PIP_", "CUDA_", "NVIDIA_")
_PROXIES = {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}
# Secrets that could ride in on an inherited prefix (UV_PUBLISH_TOKEN, PIP_PASSWORD, NVIDIA_API_KEY...).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|(^|_)(API_?)?KEY(_|$)", re.IGNORECASE)


@dataclass
class Job:
    """One job's record: what was asked, who asked, and where it stands."""

    id: str
    seq: int
    namespace: str
    owner_type: str
    initiator: str
    command: list[str]
    arguments: list[str]
    environment: dict[str, str]
    secret_names: list[str]
    flavor: str
    labels: dict[str, str]
    timeout: int
    created_at: str
    image: str | None = None
    space_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    stage: str = "SCHEDULING"
    message: str | None = None
    workdir: str | None = None
    pid: int | None = None  # with pid_start, lets a restarted sandbox kill what a crashed one left
    pid_start: str | None = None
    volumes: list[dict] = field(default_factory=list)  # as `volumes.parse_volumes` normalised them

    def to_api(self) -> dict:
        """The job as the Hub's JSON shapes it; secrets masked, never their values."""
        return {
            "id": self.id,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            **({"spaceId": self.space_id} if self.space_id else {"dockerImage": self.image}),
            "command": self.command,
            "arguments": self.arguments,
            "environment": self.environment,
            "secrets": dict.fromkeys(self.secret_names, SECRET_MASK),
            "flavor": self.flavor,
            "labels": self.labels,
            "timeoutSeconds": self.timeout,
            **({"volumes": self.volumes} if self.volumes else {}),
            "status": {"stage": self.stage, "message": self.message},
            "owner": _account(self.owner_type, self.namespace),
            "initiator": _account("user", self.initiator),
            "durations": self.durations(),
        }

    def durations(self) -> dict:
        """Seconds scheduling, running and in total; recomputed while the job runs, as the Hub does."""
        created, started, finished = (_parse(t) for t in (self.created_at, self.started_at, self.finished_at))
        end = finished or datetime.now(created.tzinfo)
        return {
            "schedulingSecs": int(((started or end) - created).total_seconds()),
            "runningSecs": int((end - started).total_seconds()) if started else None,
            "totalSecs": int((end - created).total_seconds()),
        }

    def matches(self, stages: set[str], labels: list[tuple[str, str | None]]) -> bool:
        """The list filters: any of `stages` (if given) and every label (`k=v`, or bare `k`)."""
        if stages and self.stage not in stages:
            return False
        return all(k in self.labels and (v is None or self.labels[k] == v) for k, v in labels)


@dataclass
class JobRun:
    """What only a running job has: its secrets, live log, process and stop requests."""

    job: Job
    secrets: dict[str, str]
    book: LogBook
    started: threading.Event = field(default_factory=threading.Event)  # set once RUNNING (or ended)
    thread: threading.Thread | None = None
    proc: subprocess.Popen | None = None
    stop_request: str | None = None  # "cancel" or "shutdown", set from other threads
    canceled_by: str = ""
    stop_reason: str | None = None  # what actually stopped it: the request, or "timeout"
    term_at: float | None = None
    killed: bool = False


class JobManager:
    """All jobs of one sandbox: create, look up, list, cancel, and run them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.endpoint = ""  # set by `Sandbox` once bound; jobs get it as HF_ENDPOINT
        self.grace_seconds = 5.0  # between SIGTERM and SIGKILL on timeout or cancel
        self.page_size = 50  # jobs per page of `GET /api/jobs/{ns}`
        self.default_timeout = DEFAULT_TIMEOUT_S
        self.volumes: Volumes | None = None  # set by `Sandbox`: mounts the volumes of jobs that have some
        self.held: Callable[[], bool] = lambda: False  # the hold_scheduling fault knob, wired by Sandbox
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._runs: dict[str, JobRun] = {}
        self._seq = 0
        root.mkdir(parents=True, exist_ok=True)
        self._load()

    # -- the store -----------------------------------------------------------------
    def create(self, *, namespace: str, owner_type: str, initiator: str, secrets: dict[str, str],
               **spec: object) -> Job:
        """Record a job and start it; returns once its process runs (RUNNING), as a client would hope."""
        with self._lock:
            self._seq += 1
            job_id = f"{int(time.time()):08x}{secrets_lib.token_hex(8)}"  # like the Hub's ObjectIds
            job = Job(id=job_id, seq=self._seq, namespace=namespace, owner_type=owner_type, initiator=initiator,
                      secret_names=sorted(secrets), created_at=utc_now_iso(), **spec)  # type: ignore[arg-type]
            self._jobs[job_id] = job
            if held := self.held():
                job.message = HELD_MESSAGE  # queued from the start: a client polling at once sees why
            (self.root / job_id).mkdir()
            self._save(job)
            run = JobRun(job, secrets, LogBook(self._log_path(job)))
            run.thread = threading.Thread(target=self._run, args=(run,), name=f"hfjob-{job_id}", daemon=True)
            self._runs[job_id] = run
        run.thread.start()
        if not held:
            run.started.wait(START_WAIT_S)
        return job

    def get(self, namespace: str, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.namespace == namespace else None

    def list(self, namespace: str, stages: set[str], labels: list[tuple[str, str | None]]) -> list[Job]:
        """Matching jobs of a namespace, newest first."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.namespace == namespace and j.matches(stages, labels)]
        return sorted(jobs, key=lambda j: j.seq, reverse=True)

    def snapshot(self, job: Job) -> dict:
        """`job.to_api()` taken under the lock, so no half-updated job is ever served."""
        with self._lock:
            return job.to_api()

    def book(self, job: Job) -> LogBook:
        """The job's log: live while it runs, read back from disk once it has ended."""
        with self._lock:
            run = self._runs.get(job.id)
        return run.book if run is not None else LogBook.load(self._log_path(job))

    def cancel(self, job: Job, by: str) -> None:
        """Ask a job to stop; its runner ends the whole process group (SIGTERM, grace, SIGKILL)."""
        with self._lock:
            run = self._runs.get(job.id)
            if run is not None and run.stop_request is None:
                run.canceled_by, run.stop_request = by, "cancel"

    def shutdown(self, wait_s: float = 5.0) -> None:
        """Kill every running job's process group at once and record them as ERROR."""
        with self._lock:
            runs = list(self._runs.values())
            for run in runs:
                run.stop_request = "shutdown"
                if run.proc is not None:
                    _signal_group(run.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + wait_s
        for run in runs:
            if run.thread is not None:
                run.thread.join(max(0.0, deadline - time.monotonic()))

    def _update(self, job: Job, **changes: object) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
            self._save(job)

    def _save(self, job: Job) -> None:
        path = self.root / job.id / "job.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(job), indent=1))
        os.replace(tmp, path)

    def _log_path(self, job: Job) -> Path:
        return self.root / job.id / "logs.jsonl"

    def _load(self) -> None:
        """Read back the records; a job that was running when the sandbox died is now ERROR."""
        names = {f.name for f in fields(Job)}
        for path in sorted(self.root.glob("*/job.json")):
            try:
                record = json.loads(path.read_text())
                job = Job(**{k: v for k, v in record.items() if k in names})
            except (OSError, ValueError, TypeError) as err:
                log.warning("skipping unreadable job record %s: %s", path, err)
                continue
            self._jobs[job.id] = job
            self._seq = max(self._seq, job.seq)
            if job.stage not in TERMINAL_STAGES:
                self._mark_lost(job)
        self._jobs = dict(sorted(self._jobs.items(), key=lambda item: item[1].seq))

    def _mark_lost(self, job: Job) -> None:
        """A job a crashed sandbox left unfinished: kill what remains, say so in its log, make it ERROR."""
        _kill_leftover(job)
        _remove_workdir(job.workdir)
        _end_torn_log(self._log_path(job))
        book = LogBook(self._log_path(job))
        book.append([f"[sandbox] {LOST_MESSAGE}"])
        book.close()
        self._update(job, stage="ERROR", message=LOST_MESSAGE, finished_at=job.finished_at or utc_now_iso())

    # -- the runner (one thread per job) -------------------------------------------
    def _run(self, run: JobRun) -> None:
        """Run the job start to end; whatever happens, it ends in a final stage."""
        job = run.job
        stage, message = "ERROR", "The sandbox failed to run the job"
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{job.id[-8:]}-"))
            self._update(job, workdir=str(tmp))
            try:
                stage, message = self._execute(run, tmp)
                run.book.append(lost_files_report(tmp / "work", tmp / BESIDE_VOLUMES))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
                if job.volumes and self.volumes is not None:
                    self.volumes.release(job.id)
        except Exception:  # a sandbox bug must not leave the job RUNNING forever
            log.exception("job %s", job.id)
        self._update(job, stage=stage, message=message, finished_at=utc_now_iso())
        run.started.set()
        run.book.close()  # after the final stage: the client polls the stage when the stream ends
        with self._lock:
            self._runs.pop(job.id, None)

    def _execute(self, run: JobRun, tmp: Path) -> tuple[str, str | None]:
        job = run.job
        (tmp / "work").mkdir()
        (tmp / "home").mkdir()
        (tmp / "tmp").mkdir()
        where = f"image '{job.image}'" if job.image else f"Space '{job.space_id}'"
        run.book.append([f"[sandbox] {where} was not pulled; the command runs on the host "
                         f"(Python {sys.version.split()[0]}) in a fresh temporary directory"])
        self._hold(run)
        if run.stop_request:
            return self._outcome(run, None)
        argv = [*job.command, *job.arguments]
        env = job_environment(job, run.secrets, tmp / "home", self.endpoint)
        try:
            if job.volumes and self.volumes is not None:
                argv = self.volumes.command(job.id, job.volumes, tmp / "work", argv, tmp / BESIDE_VOLUMES)
            run.proc = subprocess.Popen(argv, cwd=tmp / "work", env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        except (OSError, ValueError) as err:
            run.book.append([f"[sandbox] could not start {argv[0]!r}: {getattr(err, 'strerror', None) or err}"])
            return "ERROR", f"Job failed to start: {argv[0]!r}: {getattr(err, 'strerror', None) or err}"
        pid = run.proc.pid
        self._update(job, stage="RUNNING", message=None, started_at=utc_now_iso(), pid=pid, pid_start=_start_time(pid))
        run.started.set()
        self._pump(run, time.monotonic() + job.timeout)
        returncode = run.proc.wait()
        _signal_group(run.proc.pid, signal.SIGKILL)  # nothing outlives the job, as in a container
        return self._outcome(run, returncode)

    def _hold(self, run: JobRun) -> None:
        """Stay in SCHEDULING while the hold knob is set, as a job waits in the Hub's queue."""
        if self.held() and run.job.message != HELD_MESSAGE:
            self._update(run.job, message=HELD_MESSAGE)
        while self.held() and not run.stop_request:
            time.sleep(POLL_S)

    def _pump(self, run: JobRun, deadline: float) -> None:
        """Move output into the log until EOF, enforcing timeout and cancel meanwhile."""
        proc = run.proc
        assert proc is not None and proc.stdout is not None
        fd, splitter, exited_at = proc.stdout.fileno(), LineSplitter(), None
        while True:
            if select.select([fd], [], [], POLL_S)[0]:
                data = os.read(fd, READ_BYTES)
                if not data:
                    break
                run.book.append(splitter.feed(data))
            now = time.monotonic()
            self._enforce(run, now, deadline)
            if proc.poll() is not None:
                if exited_at is None:
                    exited_at = now
                    _signal_group(proc.pid, signal.SIGKILL)
                elif now - exited_at > STRAGGLER_S:
                    break  # a descendant that left the process group still holds the pipe
        run.book.append(splitter.flush())
        proc.stdout.close()

    def _enforce(self, run: JobRun, now: float, deadline: float) -> None:
        """Start stopping on a request or at the deadline; SIGKILL once the grace period is over."""
        assert run.proc is not None
        if run.term_at is None:
            reason = run.stop_request or ("timeout" if now >= deadline else None)
            if reason is None:
                return
            run.stop_reason, run.term_at = reason, now
            run.book.append([_stop_notice(run, self.grace_seconds)])
            _signal_group(run.proc.pid, signal.SIGKILL if reason == "shutdown" else signal.SIGTERM)
        elif not run.killed and now - run.term_at >= self.grace_seconds:
            run.killed = True
            _signal_group(run.proc.pid, signal.SIGKILL)

    @staticmethod
    def _outcome(run: JobRun, returncode: int | None) -> tuple[str, str | None]:
        """The final (stage, message) from what stopped the job, or from its exit code."""
        reason = run.stop_reason or run.stop_request
        if reason == "cancel":
            return "CANCELED", f"Canceled by {run.canceled_by}"
        if reason == "timeout":
            return "ERROR", f"Job timed out after {run.job.timeout} s"
        if reason == "shutdown" or returncode is None:
            return "ERROR", STOPPED_MESSAGE
        if returncode == 0:
            return "COMPLETED", None
        if returncode < 0:
            name = signal.Signals(-returncode).name
            return "ERROR", f"Job was killed by {name} (exit code {128 - returncode})"
        return "ERROR", f"Job failed with exit code {returncode}"


def job_environment(job: Job, secrets: dict[str, str], home: Path, endpoint: str) -> dict[str, str]:
    """A clean environment: a few host settings, the sandbox's, then the job's env and secrets."""
    env = {k: v for k, v in os.environ.items() if _inherited(k)}
    # The sandbox's own Python (with huggingface_hub and uv) comes first; the host's PATH follows.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    env.update(
        HOME=str(home),
        TMPDIR=str(home.parent / "tmp"),  # the job's /tmp: private, and gone when it ends
        HF_HOME=str(home / ".cache" / "huggingface"),  # never the host's login or token
        UV_CACHE_DIR=_host_uv_cache(),  # a cache, shared so jobs need not download again
        XDG_CONFIG_HOME=os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config"),  # uv/pip config
        UV_PYTHON_DOWNLOADS="never",
        PYTHONUNBUFFERED="1",
        JOB_ID=job.id,
    )
    if endpoint:  # empty only for a JobManager used without a server
        env["HF_ENDPOINT"] = endpoint
    env.update(job.environment)
    env.update(secrets)
    return env


def _inherited(name: str) -> bool:
    """Whether a job gets the serving process's variable `name`: what a container has, never a secret."""
    if name.lower() in _PROXIES:
        return True  # a proxy URL may hold a password, but a job cannot reach the network without it
    listed = name in _INHERITED or name.startswith(_INHERITED_PREFIXES)
    return listed and not _SECRET_NAME.search(name)


def lost_files_report(work: Path, beside: Path | None = None) -> list[str]:
    """The last log line: files the job left in its working dir and never uploaded, which die with it; also
    those it wrote next to its volumes (`beside`), named by their path in the job (`/hfjob/model.bin`)."""
    found, kept = _left_behind(work)
    if beside is not None:
        found += [(size, f"/{path}") for size, path in _left_behind(beside)[0] if Path(path).name != PUSH_MANIFEST]
    if not found and kept:
        return [f"[sandbox] job ended; nothing would be lost: the {kept} file(s) it left were all uploaded"]
    if not found:
        return []
    found.sort(key=lambda item: (-item[0], item[1]))
    shown = ", ".join(f"{name} ({human_size(size)})" for size, name in found[:LOST_FILES_SHOWN])
    more = f", and {len(found) - LOST_FILES_SHOWN} more" if len(found) > LOST_FILES_SHOWN else ""
    noun = "file" if len(found) == 1 else "files"
    safe = f" (not counting {kept} uploaded by --outputs)" if kept else ""
    return [f"[sandbox] job ended; {len(found)} {noun} left in its working dir would be lost{safe}: {shown}{more}"]


def _left_behind(work: Path) -> tuple[list[tuple[int, str]], int]:
    """([(size, path)] never uploaded, how many were): the --outputs wrapper's manifest names the uploaded ones."""
    uploaded = _uploaded(work / PUSH_MANIFEST)
    found: list[tuple[int, str]] = []
    kept = 0
    for dirpath, _dirs, names in os.walk(work):
        for name in names:
            path = Path(dirpath, name)
            try:
                stat, relative = path.lstat(), path.relative_to(work).as_posix()
            except OSError:
                continue
            if uploaded.get(relative) == (stat.st_size, stat.st_mtime_ns):
                kept += 1
            elif relative != PUSH_MANIFEST:
                found.append((stat.st_size, relative))
    return found, kept


def _uploaded(manifest: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of each file the wrapper uploaded (`persist.MANIFEST`, JSON lines)."""
    uploaded = {}
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    for line in lines:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            entry = json.loads(line)
            uploaded[str(entry["path"])] = (int(entry["size"]), int(entry["mtime_ns"]))
    return uploaded


def human_size(size: int) -> str:
    """Bytes the way the Hub shows them: decimal units, one decimal."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _stop_notice(run: JobRun, grace: float) -> str:
    why = {"cancel": f"canceled by {run.canceled_by}", "shutdown": "the sandbox is stopping",
           "timeout": f"timeout of {run.job.timeout} s reached"}[run.stop_reason or ""]
    return f"[sandbox] {why}: stopping the job's processes (SIGTERM, then SIGKILL after {grace:g} s)"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _host_uv_cache() -> str:
    if cache := os.environ.get("UV_CACHE_DIR"):
        return cache
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "uv")


def _start_time(pid: int) -> str | None:
    """When a process started (Linux), so a recorded pid is never mistaken for a newer process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _kill_leftover(job: Job) -> None:
    """Kill the process group a crashed sandbox left running, if it is still that very group."""
    if job.pid and job.pid_start and _start_time(job.pid) == job.pid_start:
        _signal_group(job.pid, signal.SIGKILL)


def _end_torn_log(path: Path) -> None:
    """Drop a last log line a crash cut short, so the next line appended starts a line of its own."""
    with contextlib.suppress(FileNotFoundError), open(path, "rb+") as handle:
        data = handle.read()
        handle.truncate(data.rfind(b"\n") + 1)


def _remove_workdir(workdir: str | None) -> None:
    """Delete a dead job's temporary directory, and only ever one the sandbox made."""
    if workdir:
        path = Path(workdir)
        if path.parent == Path(tempfile.gettempdir()) and path.name.startswith(WORKDIR_PREFIX):
            shutil.rmtree(path, ignore_errors=True)


def _account(kind: str, name: str) -> dict:
    return {"id": f"sandbox-{name}", "name": name, "type": kind}


def _parse(timestamp: str | None) -> datetime | None:
    return datetime.fromisoformat(timestamp[:-1] + "+00:00") if timestamp else None

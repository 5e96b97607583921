"""`Sandbox`: run the local Hub + Jobs server on loopback, from Python or `hfjob sandbox`."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import uvicorn

from hfjobs_magic.sandbox.accounts import DEFAULT_ORGS, DEFAULT_READ_ORGS, DEFAULT_USER, OTHER_USER, Accounts
from hfjobs_magic.sandbox.app import build_app
from hfjobs_magic.sandbox.buckets import BucketStore
from hfjobs_magic.sandbox.faults import Faults
from hfjobs_magic.sandbox.jobs import JobManager
from hfjobs_magic.sandbox.repos import RepoStore
from hfjobs_magic.sandbox.schedules import ScheduleStore
from hfjobs_magic.sandbox.state import SandboxState
from hfjobs_magic.sandbox.tokens import exposure_problem, stored_tokens
from hfjobs_magic.sandbox.volumes import Volumes
from hfjobs_magic.sandbox.xet import XetStore

FAULTS_ENV = "HFJOB_SANDBOX_FAULTS"
START_TIMEOUT_S = 15.0


class Sandbox:
    """A local stand-in for the Hugging Face Hub and its Jobs API.

    Use as a context manager: `with Sandbox() as sb: HfApi(endpoint=sb.endpoint, token=sb.token)`.
    Without `data_dir`, repos live in a temporary folder removed on exit; with
    one, they survive a restart. Tokens not given are random and kept in the
    data dir (`tokens.stored_tokens`); a `host` beyond loopback needs a `token`.
    `other_user`/`other_token` name the second user, `fullnames` the display names whoami shows
    (both for suites written against fixed accounts). `schedule_time_scale` > 1 runs the
    scheduler's clock that much faster (tests only: at
    60, `* * * * *` fires every second).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | os.PathLike[str] | None = None,
        user: str = DEFAULT_USER,
        token: str | None = None,
        read_token: str | None = None,
        orgs: Sequence[str] = DEFAULT_ORGS,
        read_orgs: Sequence[str] = DEFAULT_READ_ORGS,
        other_user: str = OTHER_USER,
        other_token: str | None = None,
        fullnames: Mapping[str, str] | None = None,
        log_level: str = "warning",
        schedule_time_scale: float = 1.0,
    ) -> None:
        if problem := exposure_problem(host, token):
            raise ValueError(problem)
        self.host, self.port = host, port
        self._own_data_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="hfjob-sandbox-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        kept = stored_tokens(self.data_dir)
        accounts = Accounts(token=token or kept["token"], read_token=read_token or kept["read_token"],
                            other_token=other_token or kept["other_token"], user=user, orgs=list(orgs),
                            read_orgs=list(read_orgs), other_user=other_user, fullnames=dict(fullnames or {}))
        repos, buckets = RepoStore(self.data_dir / "repos"), BucketStore(self.data_dir / "buckets")
        self.state = SandboxState(
            data_dir=self.data_dir,
            accounts=accounts,
            repos=repos,
            jobs=(jobs := JobManager(self.data_dir / "jobs")),
            buckets=buckets,
            volumes=Volumes(self.data_dir / "volumes", buckets, repos),
            xet=XetStore(self.data_dir / "xet"),
            schedules=ScheduleStore(self.data_dir / "scheduled-jobs", jobs, schedule_time_scale),
        )
        self.state.jobs.volumes = self.state.volumes
        self.state.jobs.held = lambda: self.state.faults.plan.hold_scheduling
        if spec := os.environ.get(FAULTS_ENV):
            self.state.faults.set(**Faults.parse(spec))
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- what callers use ----------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return self.state.endpoint

    @property
    def token(self) -> str:
        return self.state.accounts.token

    @property
    def read_token(self) -> str:
        return self.state.accounts.read_token

    @property
    def user(self) -> str:
        return self.state.accounts.user

    @property
    def other_user(self) -> str:
        """A second user, owner of a namespace `user` cannot write to."""
        return self.state.accounts.other_user

    @property
    def other_token(self) -> str:
        return self.state.accounts.other_token

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def jobs(self) -> JobManager:
        return self.state.jobs

    @property
    def schedules(self) -> ScheduleStore:
        return self.state.schedules

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Sandbox:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so,
        # and without it every response waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        shown_host = f"[{self.host}]" if ":" in self.host else self.host
        self.state.endpoint = f"http://{shown_host}:{self.port}"
        self.state.jobs.endpoint = self.state.endpoint
        config = uvicorn.Config(
            build_app(self.state),
            log_level=self._log_level,
            access_log=False,
            timeout_graceful_shutdown=2,
            lifespan="off",
            date_header=False,  # app.FreshDate sets it, fresh for each response
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="hfjob-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox could not start on {self.host}:{self.port}")
            time.sleep(0.005)
        self.state.schedules.start()
        return self

    def stop(self) -> None:
        """Stop firing runs, kill running jobs, stop serving, and remove a temporary data dir."""
        self.state.schedules.stop()
        self.state.jobs.shutdown()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

"""The one state object the sandbox's endpoints share (`request.app.state.sandbox`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hfjobs_magic.sandbox.accounts import Accounts
from hfjobs_magic.sandbox.buckets import BucketStore
from hfjobs_magic.sandbox.faults import Faults
from hfjobs_magic.sandbox.jobs import JobManager
from hfjobs_magic.sandbox.metrics import MetricStreams
from hfjobs_magic.sandbox.repos import RepoStore
from hfjobs_magic.sandbox.schedules import ScheduleStore
from hfjobs_magic.sandbox.volumes import Volumes
from hfjobs_magic.sandbox.xet import XetStore

MiB = 1024 * 1024


@dataclass
class Limits:
    max_request_bytes: int = 512 * MiB  # a whole request body (NDJSON commits carry files inline)
    max_file_bytes: int = 256 * MiB  # one file of a commit


@dataclass
class SandboxState:
    data_dir: Path
    accounts: Accounts
    repos: RepoStore
    jobs: JobManager
    buckets: BucketStore
    volumes: Volumes
    xet: XetStore
    schedules: ScheduleStore
    faults: Faults = field(default_factory=Faults)
    limits: Limits = field(default_factory=Limits)
    metric_streams: MetricStreams = field(default_factory=MetricStreams)
    endpoint: str = ""  # set once the server is bound; jobs get it as HF_ENDPOINT

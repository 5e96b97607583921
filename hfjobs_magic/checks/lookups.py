"""The checklist's Hub look-ups: all at once, under one shared deadline, every failure said out loud.

whoami, the hardware list, one `repo_info` per push target or repo volume and one `bucket_info` per
HF bucket run on daemon threads
(a look-up that hangs must not hold the kernel or the interpreter's exit), so the
checklist costs about one round trip, not one per look-up. A look-up that cannot be
made comes back as an `Answer` with a `failure`, which the checks turn into a warn.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hfjobs_magic.cell.scan import mask_tokens

if TYPE_CHECKING:
    from hfjobs_magic.remote.hub import HubClient

DEADLINE_S = 10.0
NO_TOKEN = "no Hugging Face token here"


@dataclass(frozen=True)
class Answer:
    """A look-up's value, or why there is none (`failure`, plain text; `status` when the Hub said no)."""

    value: Any = None
    failure: str | None = None
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def rejected_token(self) -> bool:
        return self.status == 401


@dataclass
class Lookups:
    """Every Hub answer the checks read, gathered at once before any check runs."""

    whoami: Answer
    hardware: Answer
    repos: dict[tuple[str, str], Answer] = field(default_factory=dict)
    buckets: dict[str, Answer] = field(default_factory=dict)  # S3/GCS push targets: (reachable, what was found)
    hf_buckets: dict[str, Answer] = field(default_factory=dict)  # HF bucket id -> BucketSummary, or None
    seconds: float = 0.0  # wall time of the whole gathering, for the benchmark


def gather(client: HubClient | None, repos: Iterable[tuple[str, str]], deadline_s: float = DEADLINE_S,
           buckets: Iterable[str] = (), hf_buckets: Iterable[str] = ()) -> Lookups:
    """whoami, hardware, every (repo_id, repo_type), S3/GCS bucket and HF bucket at once; returns by the deadline."""
    started = time.monotonic()
    keys, urls, ids = list(dict.fromkeys(repos)), list(dict.fromkeys(buckets)), list(dict.fromkeys(hf_buckets))
    tasks: dict[Hashable, Callable[[], Any]] = {("bucket", u): (lambda u=u: _probe(u)) for u in urls}
    if client is None:
        missing = Answer(failure="no connection to the Hub was set up")
        probed = run_parallel(tasks, deadline_s) if tasks else {}
        return Lookups(missing, missing, dict.fromkeys(keys, missing), {u: probed[("bucket", u)] for u in urls},
                       dict.fromkeys(ids, missing))
    tasks["hardware"] = client.hardware
    if client.token:
        tasks["whoami"] = client.whoami
    for repo_id, repo_type in keys:
        tasks[(repo_id, repo_type)] = lambda r=repo_id, t=repo_type: client.repo_info(r, t)
    for bucket_id in ids:
        tasks[("hf-bucket", bucket_id)] = lambda b=bucket_id: client.bucket_info(b)
    _ = client.api  # import huggingface_hub.hf_api once, here, not racing in every thread
    answers = run_parallel(tasks, deadline_s, secret=client.token)
    whoami = answers.pop("whoami", Answer(failure=NO_TOKEN))
    hardware = answers.pop("hardware")
    probed = {u: answers[("bucket", u)] for u in urls}
    return Lookups(whoami, hardware, {k: answers[k] for k in keys}, probed,
                   {b: answers[("hf-bucket", b)] for b in ids}, time.monotonic() - started)


def _probe(url: str) -> tuple[bool, str]:
    """HEAD and list the bucket with the credentials the job will get (storage clients load only here)."""
    from hfjobs_magic.remote.storage import probe_target

    return probe_target(url)


def run_parallel(tasks: dict[Hashable, Callable[[], Any]], deadline_s: float,
                 secret: str | None = None) -> dict[Hashable, Answer]:
    """Run every task on its own daemon thread; whatever has not answered by the deadline fails."""
    done: queue.Queue[tuple[Hashable, Answer]] = queue.Queue()
    for key, task in tasks.items():
        threading.Thread(target=_run_one, args=(key, task, done, secret), daemon=True,
                         name=f"hfjob-check-{key}").start()
    deadline = time.monotonic() + deadline_s
    answers: dict[Hashable, Answer] = {}
    while len(answers) < len(tasks) and (remaining := deadline - time.monotonic()) > 0:
        try:
            key, answer = done.get(timeout=remaining)
        except queue.Empty:
            break
        answers[key] = answer
    late = Answer(failure=f"the Hub did not answer within {deadline_s:g} s")
    return {key: answers.get(key, late) for key in tasks}


def _run_one(key: Hashable, task: Callable[[], Any], done: queue.Queue, secret: str | None) -> None:
    try:
        answer = Answer(value=task())
    except Exception as err:  # every failure becomes a warn the user reads, never a crash
        answer = describe(err, secret)
    done.put((key, answer))


def describe(err: BaseException, secret: str | None = None) -> Answer:
    """A failed look-up in plain words, with its HTTP status when the Hub answered."""
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        detail = getattr(err, "server_message", None) or ""
        text = f"the Hub answered HTTP {status}" + (f" ({_first_line(detail)})" if detail else "")
    else:
        text = f"{type(err).__name__}: {_first_line(str(err)) or 'no detail'}"
    if secret:
        text = text.replace(secret, "***")
    return Answer(failure=mask_tokens(text)[:200], status=status)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


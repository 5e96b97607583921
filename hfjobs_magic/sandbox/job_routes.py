"""The Jobs API over HTTP, shaped like the Hub's for the real `huggingface_hub` client.

Create, inspect, list (stage and label filters, `Link` pagination), cancel, logs
as SSE, and the hardware table. Endpoints check rights, parse, and hand off to
`JobManager`; they never touch processes themselves.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from hfjobs_magic.remote.hardware import BY_NAME, DEFAULT_FLAVOR, FLAVORS
from hfjobs_magic.sandbox.accounts import Identity, caller, require_caller, require_writer
from hfjobs_magic.sandbox.joblog import LogBook
from hfjobs_magic.sandbox.jobs import Job, JobManager
from hfjobs_magic.sandbox.volumes import VolumeError, parse_volumes

MAX_SPEC_BYTES = 1024 * 1024  # a job spec carries env and arguments, not data
EVENTS_PER_WRITE = 8192  # SSE events joined into one write: few large writes keep logs fast
KEEPALIVE_S = 30.0  # as the Hub: long enough that a no-follow client's 5 s read timeout still ends it
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _jobs(request: Request) -> JobManager:
    return request.app.state.sandbox.jobs


def reader_of(request: Request) -> str:
    """The namespace in the path, which the caller must belong to (any token role)."""
    namespace = request.path_params["namespace"]
    if not require_caller(request).member_of(namespace):
        raise HTTPException(403, f"Forbidden: you cannot see the jobs of '{namespace}'")
    return namespace


def find_job(request: Request, namespace: str) -> Job:
    job_id = request.path_params["job_id"]
    job = _jobs(request).get(namespace, job_id)
    if job is None:
        raise HTTPException(404, f"Job {job_id} not found in namespace '{namespace}'")
    return job


# -- endpoints ---------------------------------------------------------------------
async def hardware(request: Request) -> JSONResponse:
    caller(request)  # public, but a bad token is still a 401, as elsewhere
    return JSONResponse([flavor.to_api() for flavor in FLAVORS])


async def create_job(request: Request) -> JSONResponse:
    namespace = request.path_params["namespace"]
    identity = require_writer(request, namespace)
    body = await request.body()
    if len(body) > MAX_SPEC_BYTES:
        raise HTTPException(413, f"Job spec too large: {len(body)} bytes > {MAX_SPEC_BYTES} bytes")
    spec, secrets = parse_spec(_json(body), _jobs(request).default_timeout)
    spec["volumes"] = await _checked_volumes(request, identity, spec["volumes"])
    job = await run_in_threadpool(  # waits for the process to start: not on the event loop
        _jobs(request).create, namespace=namespace, owner_type=owner_type(identity, namespace),
        initiator=identity.name, secrets=secrets, **spec,
    )
    return JSONResponse(_jobs(request).snapshot(job))


async def _checked_volumes(request: Request, identity: Identity, volumes: list[dict]) -> list[dict]:
    """The caller's volumes, `me/` named; refused as the Hub would when one cannot be mounted."""
    if not volumes:
        return volumes
    try:
        return await run_in_threadpool(request.app.state.sandbox.volumes.check, identity, volumes)
    except VolumeError as err:
        raise HTTPException(err.status, str(err)) from err


async def inspect_job(request: Request) -> JSONResponse:
    job = find_job(request, reader_of(request))
    return JSONResponse(_jobs(request).snapshot(job))


async def list_jobs(request: Request) -> JSONResponse:
    namespace = reader_of(request)
    params = request.query_params
    stages = {stage.upper() for stage in params.getlist("stage")}
    labels = [parse_label(item) for item in params.getlist("label")]
    jobs = _jobs(request).list(namespace, stages, labels)
    if (cursor := _int_param(request, "cursor")) is not None:
        jobs = [job for job in jobs if job.seq < cursor]
    size = _jobs(request).page_size
    page = jobs[:size]
    headers = {}
    if len(jobs) > size:
        headers["Link"] = f'<{request.url.include_query_params(cursor=page[-1].seq)}>; rel="next"'
    return JSONResponse([_jobs(request).snapshot(job) for job in page], headers=headers)


async def cancel_job(request: Request) -> JSONResponse:
    namespace = request.path_params["namespace"]
    identity = require_writer(request, namespace)
    job = find_job(request, namespace)
    _jobs(request).cancel(job, identity.name)
    return JSONResponse(_jobs(request).snapshot(job))


async def job_logs(request: Request) -> StreamingResponse:
    """SSE: the whole log so far (or its last `tail` lines), then live lines until the job ends."""
    job = find_job(request, reader_of(request))
    tail = _int_param(request, "tail")
    book = await run_in_threadpool(_jobs(request).book, job)
    start = max(0, len(book.events) - tail) if tail is not None else 0
    drop_after = request.app.state.sandbox.faults.take_log_drop()
    stop = start + drop_after if drop_after else None
    return StreamingResponse(sse_events(book, start, stop), media_type="text/event-stream", headers=SSE_HEADERS)


async def sse_events(book: LogBook, start: int, stop: int | None) -> AsyncIterator[bytes]:
    """Send events `start..stop` in large writes, waiting for new ones while the job runs.

    The stream ends only once the log is closed, which happens after the job's
    final stage is recorded; `stop` (an injected fault) cuts it early.
    """
    sent = start
    while True:
        closed = book.closed  # read before the length: a closed log gets no more events
        end = len(book.events) if stop is None else min(len(book.events), stop)
        if end > sent:
            for first in range(sent, end, EVENTS_PER_WRITE):
                yield b"".join(book.events[first:min(first + EVENTS_PER_WRITE, end)])
            sent = end
            continue
        if closed or (stop is not None and sent >= stop):
            return
        await book.wait_beyond(sent, KEEPALIVE_S)
        if len(book.events) == sent and not book.closed:
            yield b": keep-alive\n\n"


# -- parsing -------------------------------------------------------------------------
def parse_spec(body: object, default_timeout: int) -> tuple[dict, dict[str, str]]:
    """The job spec the client sends (see `_create_job_spec`) -> JobManager fields, secrets."""
    if not isinstance(body, dict):
        raise HTTPException(400, "The job spec must be a JSON object")
    command = _str_list(body.get("command"), "command")
    if not command:
        raise HTTPException(400, "'command' must be a non-empty list of strings")
    image, space_id = body.get("dockerImage"), body.get("spaceId")
    if not (isinstance(image, str) and image) and not (isinstance(space_id, str) and space_id):
        raise HTTPException(400, "The job spec needs a 'dockerImage' or a 'spaceId'")
    try:
        volumes = parse_volumes(body.get("volumes"))
    except ValueError as err:
        raise HTTPException(400, f"Invalid volumes: {err}") from err
    flavor = body.get("flavor") or DEFAULT_FLAVOR
    if flavor not in BY_NAME:
        raise HTTPException(400, f"Invalid flavor '{flavor}'; valid flavors: {', '.join(BY_NAME)}")
    spec = {
        "image": image or None,
        "space_id": space_id or None,
        "command": command,
        "arguments": _str_list(body.get("arguments") or [], "arguments"),
        "environment": string_dict(body.get("environment"), "environment", env=True),
        "flavor": flavor,
        "labels": string_dict(body.get("labels"), "labels"),
        "timeout": _timeout(body.get("timeoutSeconds"), default_timeout),
        "volumes": volumes,
    }
    return spec, string_dict(body.get("secrets"), "secrets", env=True)


def _str_list(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise HTTPException(400, f"'{name}' must be a list of strings")
    if any("\0" in item for item in value):
        raise HTTPException(400, f"'{name}' must not contain NUL characters")
    return value


def string_dict(value: object, name: str, env: bool = False) -> dict[str, str]:
    """A JSON object of scalars as strings; a null value means "not set" and is dropped."""
    if value is None:
        return {}
    if not isinstance(value, dict) or any(isinstance(v, (dict, list)) for v in value.values()):
        raise HTTPException(400, f"'{name}' must be an object of strings")
    out = {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items() if v is not None}
    bad = [k for k, v in out.items() if not k or "\0" in k + v or (env and "=" in k)]
    if bad:
        raise HTTPException(400, f"'{name}' has invalid entries: {', '.join(map(repr, bad))}")
    return out


def _timeout(value: object, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise HTTPException(400, "'timeoutSeconds' must be a positive number of seconds")
    return int(value)


def parse_label(item: str) -> tuple[str, str | None]:
    key, sep, value = item.partition("=")
    return key, value if sep else None


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise HTTPException(400, f"'{name}' must be a non-negative integer")
    return int(raw)


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError as err:
        raise HTTPException(400, f"The job spec is not valid JSON: {err}") from err


def owner_type(identity: Identity, namespace: str) -> str:
    return "user" if namespace == identity.name else "org"


ROUTES: list[Route] = [
    Route("/api/jobs/hardware", hardware, methods=["GET"]),
    Route("/api/jobs/{namespace}", create_job, methods=["POST"]),
    Route("/api/jobs/{namespace}", list_jobs, methods=["GET"]),
    Route("/api/jobs/{namespace}/{job_id}", inspect_job, methods=["GET"]),
    Route("/api/jobs/{namespace}/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/api/jobs/{namespace}/{job_id}/logs", job_logs, methods=["GET"]),
]

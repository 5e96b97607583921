"""Scheduled jobs over HTTP, under `/api/scheduled-jobs/{ns}`, shaped for `huggingface_hub` 2.4.

Create, list (`?label=k=v`), inspect, delete, suspend, resume, reschedule, run
now and relabel. Access as for jobs: any member of the namespace reads, only a
writer changes anything. The job spec is parsed exactly as `POST /api/jobs` parses it.
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hfjobs_magic.sandbox.accounts import require_writer
from hfjobs_magic.sandbox.job_routes import MAX_SPEC_BYTES, owner_type, parse_label, parse_spec, reader_of, string_dict
from hfjobs_magic.sandbox.schedules import ScheduledJob, ScheduleError, ScheduleStore

PREFIX = "/api/scheduled-jobs/{namespace}"


def _store(request: Request) -> ScheduleStore:
    return request.app.state.sandbox.schedules


def find_scheduled(request: Request, namespace: str) -> ScheduledJob:
    item_id = request.path_params["item_id"]
    item = _store(request).get(namespace, item_id)
    if item is None:
        raise HTTPException(404, f"Scheduled job {item_id} not found in namespace '{namespace}'")
    return item


def _writable(request: Request) -> tuple[str, ScheduledJob]:
    """(caller's name, the scheduled job) for a change: the caller must be able to write the namespace."""
    namespace = request.path_params["namespace"]
    identity = require_writer(request, namespace)
    return identity.name, find_scheduled(request, namespace)


async def _body(request: Request) -> dict:
    raw = await request.body()
    if len(raw) > MAX_SPEC_BYTES:
        raise HTTPException(413, f"Request too large: {len(raw)} bytes > {MAX_SPEC_BYTES} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as err:
        raise HTTPException(400, f"The request body is not valid JSON: {err}") from err
    if not isinstance(body, dict):
        raise HTTPException(400, "The request body must be a JSON object")
    return body


def _flag(body: dict, name: str) -> bool:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise HTTPException(400, f"'{name}' must be true or false")
    return bool(value)


def _answer(request: Request, item: ScheduledJob) -> JSONResponse:
    return JSONResponse(_store(request).snapshot(item))


# -- endpoints ---------------------------------------------------------------------
async def create(request: Request) -> JSONResponse:
    namespace = request.path_params["namespace"]
    identity = require_writer(request, namespace)
    body = await _body(request)
    spec, secrets = parse_spec(body.get("jobSpec"), request.app.state.sandbox.jobs.default_timeout)
    try:
        item = _store(request).create(
            namespace=namespace, owner_type=owner_type(identity, namespace), creator=identity.name, spec=spec,
            secrets=secrets, schedule=body.get("schedule"), suspend=_flag(body, "suspend"),
            concurrency=_flag(body, "concurrency"))
    except ScheduleError as err:
        raise HTTPException(400, str(err)) from err
    return _answer(request, item)


async def list_all(request: Request) -> JSONResponse:
    namespace = reader_of(request)
    labels = [parse_label(item) for item in request.query_params.getlist("label")]
    return JSONResponse([_store(request).snapshot(item) for item in _store(request).list(namespace, labels)])


async def inspect(request: Request) -> JSONResponse:
    return _answer(request, find_scheduled(request, reader_of(request)))


async def delete(request: Request) -> Response:
    _, item = _writable(request)
    await run_in_threadpool(_store(request).delete, item)
    return Response(status_code=204)


async def suspend(request: Request) -> JSONResponse:
    _, item = _writable(request)
    _store(request).set_suspended(item, True)
    return _answer(request, item)


async def resume(request: Request) -> JSONResponse:
    _, item = _writable(request)
    _store(request).set_suspended(item, False)
    return _answer(request, item)


async def reschedule(request: Request) -> JSONResponse:
    _, item = _writable(request)
    try:
        _store(request).reschedule(item, (await _body(request)).get("schedule"))
    except ScheduleError as err:
        raise HTTPException(400, str(err)) from err
    return _answer(request, item)


async def run_now(request: Request) -> JSONResponse:
    """Start a run at once (the schedule is unchanged); 409 while one runs, unless concurrency is on."""
    name, item = _writable(request)
    store = _store(request)
    if not item.concurrency and (running := store.running_run(item)) is not None:
        raise HTTPException(409, f"Scheduled job {item.id} already has a run going ({running.id}) "
                                 "and does not allow concurrent runs")
    job = await run_in_threadpool(store.run_now, item, name)  # waits for the process to start
    return JSONResponse(request.app.state.sandbox.jobs.snapshot(job))


async def relabel(request: Request) -> JSONResponse:
    """Replace all labels (the client sends them all, `name` included)."""
    _, item = _writable(request)
    labels = (await _body(request)).get("labels")
    if not isinstance(labels, dict):
        raise HTTPException(400, "'labels' must be an object of strings")
    _store(request).set_labels(item, string_dict(labels, "labels"))
    return _answer(request, item)


ROUTES: list[Route] = [
    Route(PREFIX, create, methods=["POST"]),
    Route(PREFIX, list_all, methods=["GET"]),
    Route(PREFIX + "/{item_id}", inspect, methods=["GET"]),
    Route(PREFIX + "/{item_id}", delete, methods=["DELETE"]),
    Route(PREFIX + "/{item_id}/suspend", suspend, methods=["POST"]),
    Route(PREFIX + "/{item_id}/resume", resume, methods=["POST"]),
    Route(PREFIX + "/{item_id}/schedule", reschedule, methods=["POST"]),
    Route(PREFIX + "/{item_id}/run", run_now, methods=["POST"]),
    Route(PREFIX + "/{item_id}/labels", relabel, methods=["PUT"]),
]

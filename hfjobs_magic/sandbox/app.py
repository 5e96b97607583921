"""The Starlette application: route table, error shapes, size limits, fault injection."""

from __future__ import annotations

import errno
import uuid
from dataclasses import asdict
from email.utils import formatdate

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hfjobs_magic.sandbox import (
    bucket_routes,
    hub_routes,
    job_routes,
    metric_routes,
    ref_routes,
    schedule_routes,
    xet,
)
from hfjobs_magic.sandbox.faults import CONTROL_PREFIX, FaultMiddleware
from hfjobs_magic.sandbox.state import SandboxState


async def get_faults(request: Request) -> JSONResponse:
    return JSONResponse(asdict(request.app.state.sandbox.faults.plan))


async def set_faults(request: Request) -> JSONResponse:
    try:
        changes = await request.json()
        plan = request.app.state.sandbox.faults.set(**changes)
    except (ValueError, TypeError) as err:
        raise HTTPException(400, f"Bad fault plan: {err}") from err
    return JSONResponse(asdict(plan))


async def clear_faults(request: Request) -> Response:
    request.app.state.sandbox.faults.clear()
    return Response(status_code=204)


CONTROL_ROUTES = [
    Route(f"{CONTROL_PREFIX}faults", get_faults, methods=["GET"]),
    Route(f"{CONTROL_PREFIX}faults", set_faults, methods=["POST"]),
    Route(f"{CONTROL_PREFIX}faults", clear_faults, methods=["DELETE"]),
]


async def http_error(request: Request, exc: Exception) -> Response:
    """Every client error as the Hub shapes it: JSON `{"error": ...}` plus the same headers."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and exc.detail == "Not Found":
        detail = f"Sandbox has no route {request.method} {request.url.path}"
    else:
        detail = exc.detail
    headers = dict(exc.headers or {})
    headers.setdefault("X-Error-Message", detail.splitlines()[0][:200] if detail else "")
    return JSONResponse({"error": detail}, status_code=exc.status_code, headers=headers)


DISK_FULL = ("Insufficient Storage: the sandbox's data dir has no space left, so nothing was stored "
             "(the repo is as it was before this request); free some space and retry")


async def disk_full(request: Request, exc: Exception) -> Response:
    """A full disk (ENOSPC, EDQUOT) is 507, not a crash; every other OSError stays a server error."""
    if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        raise exc
    return JSONResponse({"error": DISK_FULL}, status_code=507, headers={"X-Error-Message": DISK_FULL})


class BodySizeLimit:
    """Refuse with 413 any request whose declared body is larger than the limit."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            limit = self.state.limits.max_request_bytes
            if length is not None and length.isdigit() and int(length) > limit:
                body = {"error": f"Request body too large: {int(length)} bytes > {limit} bytes"}
                await JSONResponse(body, status_code=413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class FreshDate:
    """A `Date` header taken when each response starts (uvicorn's own is up to 2 s stale), and an
    `X-Request-Id`, which the client quotes in its errors as the Hub's.

    The client's no-follow log replay stops at events later than Date + 1 s, so a
    stale Date would cut the last lines of a job that just ended.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_dated(message: dict) -> None:
            if message["type"] == "http.response.start":
                date = (b"date", formatdate(usegmt=True).encode())
                request_id = (b"x-request-id", f"sandbox-{uuid.uuid4().hex[:16]}".encode())
                message = {**message, "headers": [*message.get("headers", []), date, request_id]}
            await send(message)

        await self.app(scope, receive, send_dated)


def build_app(state: SandboxState) -> Starlette:
    app = Starlette(
        routes=[*CONTROL_ROUTES, *job_routes.ROUTES, *metric_routes.ROUTES, *schedule_routes.ROUTES,
                *xet.ROUTES, *bucket_routes.ROUTES, *ref_routes.ROUTES, *hub_routes.ROUTES],
        exception_handlers={HTTPException: http_error, OSError: disk_full},
        middleware=[
            Middleware(FreshDate),
            Middleware(FaultMiddleware, faults=state.faults),
            Middleware(BodySizeLimit, state=state),
        ],
    )
    app.state.sandbox = state
    return app

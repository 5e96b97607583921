"""`GET /api/jobs/{ns}/{id}/metrics`: a running job's samples as SSE, one a second.

As the Hub: no history (the first event is the current sample), 406 for a job
that has already ended, and the stream closes when the job ends, so a following
client (`fetch_job_metrics(follow=True)`, `hf jobs stats -f`) checks the stage
and stops. A client that goes away cancels the stream (Starlette listens for the
disconnect); `state.metric_streams` counts the open ones so tests can see them close.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from hfjobs_magic.sandbox.job_routes import SSE_HEADERS, find_job, reader_of
from hfjobs_magic.sandbox.jobs import TERMINAL_STAGES, Job
from hfjobs_magic.sandbox.metrics import GroupSampler, metric_event

if TYPE_CHECKING:
    from hfjobs_magic.sandbox.state import SandboxState

INTERVAL_S = 1.0  # one event a second, as the Hub
STAGE_POLL_S = 0.1  # how soon a stream notices its job ended


async def job_metrics(request: Request) -> StreamingResponse:
    job = find_job(request, reader_of(request))
    if job.stage in TERMINAL_STAGES:
        raise HTTPException(406, f"Job {job.id} has ended ({job.stage}): it has no metrics any more")
    state = request.app.state.sandbox
    return StreamingResponse(metric_stream(state, job), media_type="text/event-stream", headers=SSE_HEADERS)


async def metric_stream(state: SandboxState, job: Job) -> AsyncIterator[bytes]:
    """Samples while the job runs; nothing while it is still SCHEDULING; the end when it ends."""
    state.metric_streams.add(1)
    try:
        sampler: GroupSampler | None = None
        while job.stage not in TERMINAL_STAGES:
            if job.stage != "RUNNING" or job.pid is None:
                await asyncio.sleep(STAGE_POLL_S)
                continue
            sampler = sampler or GroupSampler(job.pid)
            knob = state.faults.plan.gpu_utilization
            event = await run_in_threadpool(metric_event, sampler, job.flavor, job.id[-5:], knob)
            yield b"event: metric\ndata: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
            await _until_ended(job, INTERVAL_S)
    finally:
        state.metric_streams.add(-1)


async def _until_ended(job: Job, seconds: float) -> None:
    """Wait `seconds`, or less if the job ends meanwhile."""
    for _ in range(round(seconds / STAGE_POLL_S)):
        if job.stage in TERMINAL_STAGES:
            return
        await asyncio.sleep(STAGE_POLL_S)


ROUTES: list[Route] = [Route("/api/jobs/{namespace}/{job_id}/metrics", job_metrics, methods=["GET"])]

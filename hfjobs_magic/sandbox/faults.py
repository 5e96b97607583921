"""Fault injection: make the sandbox misbehave on purpose, so tests can prove recovery.

Off by default. Set through `Sandbox.faults`, through `POST /_sandbox/faults`
(JSON with the fields of `FaultPlan`), or at start-up with the environment
variable `HFJOB_SANDBOX_FAULTS`, e.g. `fail_next=2,status=503,delay=0.1`.
Two knobs shape jobs rather than requests: `gpu_utilization` (a fake GPU in
every running job's metrics) and `hold_scheduling` (new jobs wait in SCHEDULING).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, fields

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

CONTROL_PREFIX = "/_sandbox/"


@dataclass
class FaultPlan:
    fail_next: int = 0  # answer the next N matching requests with `status`
    status: int = 503
    path_prefix: str = ""  # only requests whose path starts with this count
    after_handling: bool = False  # run the request, then lose its answer (a lost response)
    drop_logs_after: int = 0  # end the next log stream after N events (0 = never)
    delay: float = 0.0  # seconds added before every answer
    gpu_utilization: int = -1  # 0-100: every running job reports one 24 GB GPU at this %; -1 = off
    hold_scheduling: bool = False  # new jobs stay SCHEDULING (queued) until this is cleared


class Faults:
    """Thread-safe holder of the current fault plan."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.plan = FaultPlan()
        self.injected = 0  # how many requests got a fault answer, for tests to assert on

    def set(self, **changes: object) -> FaultPlan:
        names = {f.name for f in fields(FaultPlan)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            typed = {key: _coerce(getattr(self.plan, key), value) for key, value in changes.items()}
            if not -1 <= typed.get("gpu_utilization", -1) <= 100:
                raise ValueError("gpu_utilization must be 0-100, or -1 for no GPU")
            for key, value in typed.items():
                setattr(self.plan, key, value)
            return FaultPlan(**vars(self.plan))

    def clear(self) -> None:
        with self._lock:
            self.plan = FaultPlan()

    def fail_next(self, n: int, status: int = 503, path_prefix: str = "", after_handling: bool = False) -> None:
        self.set(fail_next=n, status=status, path_prefix=path_prefix, after_handling=after_handling)

    def drop_logs_after(self, n: int) -> None:
        self.set(drop_logs_after=n)

    def delay(self, seconds: float) -> None:
        self.set(delay=seconds)

    def take_failure(self, path: str) -> tuple[int, bool] | None:
        """Consume one injected failure for `path`: (status, after_handling) or None."""
        with self._lock:
            plan = self.plan
            if plan.fail_next <= 0 or not path.startswith(plan.path_prefix):
                return None
            plan.fail_next -= 1
            self.injected += 1
            return plan.status, plan.after_handling

    def take_log_drop(self) -> int:
        """How many events the next log stream may send before it is cut (0 = no cut)."""
        with self._lock:
            n, self.plan.drop_logs_after = self.plan.drop_logs_after, 0
            if n:
                self.injected += 1
            return n

    @staticmethod
    def parse(spec: str) -> dict[str, str]:
        """`a=1,b=2` -> {"a": "1", "b": "2"}, for the environment variable."""
        pairs = (item.split("=", 1) for item in spec.split(",") if item.strip())
        return {key.strip(): value.strip() for key, value in pairs}


def _coerce(current: object, value: object) -> object:
    """`value` as the type of the setting; "false"/"0" from the environment variable are False."""
    if isinstance(current, bool) and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return type(current)(value)


class FaultMiddleware:
    """ASGI middleware applying the current plan to every request but the control routes."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.faults.plan.delay:
            await asyncio.sleep(self.faults.plan.delay)
        failure = self.faults.take_failure(scope["path"])
        if failure is None:
            await self.app(scope, receive, send)
            return
        status, after_handling = failure
        if after_handling:
            await self.app(scope, receive, _discard)
        body = {"error": f"Injected fault: HTTP {status} (sandbox fault injection)"}
        await JSONResponse(body, status_code=status)(scope, receive, send)


async def _discard(message: dict) -> None:
    """A `send` that drops the real answer, as a lost response would."""

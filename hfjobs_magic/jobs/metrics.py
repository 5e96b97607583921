"""A running job's CPU, memory and GPU: read from the Hub's metrics stream beside the logs.

`MetricsReader` is one more daemon thread of a `JobWatch` (same stop event); it feeds a
`MetricsState`, which keeps the latest sample, the peaks, how long the GPU has been idle and
a few minutes of history for the sparklines. The record gets `MetricsState.as_json()`
(DESIGN.md section 4, "Operating jobs"): fields the job has not got (no GPU) are absent.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from hfjobs_magic.remote.hub import HubClient, retry_transient

IDLE_GPU_PCT = 5.0  # a GPU under this utilisation does nothing worth paying for
HISTORY_S = 600.0  # the sparklines show the last ten minutes
SERIES = ("cpu_pct", "memory_bytes", "gpu_util_pct", "gpu_memory_bytes")
MAX_GAP_S = 30.0  # a longer silence (a reconnection) does not count as idle time


def sample_of(event: dict[str, Any]) -> dict[str, float]:
    """One metrics event in the record's terms; GPUs summed (memory) and averaged (utilisation)."""
    sample = {
        "cpu_pct": float(event.get("cpu_usage_pct") or 0.0),
        "memory_bytes": float(event.get("memory_used_bytes") or 0),
        "memory_total_bytes": float(event.get("memory_total_bytes") or 0),
    }
    gpus = [g for g in (event.get("gpus") or {}).values() if isinstance(g, dict)]
    if gpus:
        sample["gpu_util_pct"] = sum(float(g.get("utilization") or 0) for g in gpus) / len(gpus)
        sample["gpu_memory_bytes"] = float(sum(g.get("memory_used_bytes") or 0 for g in gpus))
        sample["gpu_memory_total_bytes"] = float(sum(g.get("memory_total_bytes") or 0 for g in gpus))
    return sample


def _rounded(key: str, value: float) -> float | int:
    """Bytes as whole numbers, percentages to a tenth."""
    return int(value) if key.endswith("_bytes") else round(value, 1)


class MetricsState:
    """Latest sample, peaks, idle-GPU time and recent history; written by the reader, read by the watcher."""

    def __init__(self, history_s: float = HISTORY_S) -> None:
        self._lock = threading.Lock()
        self.history_s = history_s
        self.latest: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self.idle_since: float | None = None  # when the current idle-GPU stretch began (monotonic)
        self.idle_total_s = 0.0
        self._last_at: float | None = None
        self._history: deque[tuple[float, dict[str, float]]] = deque()
        self.version = 0  # bumped per sample, so the watcher knows when to update the views

    def add(self, event: dict[str, Any], now: float) -> None:
        sample = sample_of(event)
        with self._lock:
            self._idle(sample, now)
            self.latest = sample
            for key in SERIES:
                if key in sample:
                    self.peak[key] = max(self.peak.get(key, sample[key]), sample[key])
            self._history.append((now, sample))
            while self._history and now - self._history[0][0] > self.history_s:
                self._history.popleft()
            self._last_at = now
            self.version += 1

    def _idle(self, sample: dict[str, float], now: float) -> None:
        idle = sample.get("gpu_util_pct", IDLE_GPU_PCT) < IDLE_GPU_PCT
        if not idle:
            self.idle_since = None
            return
        gap = now - self._last_at if self._last_at is not None else 0.0
        if self.idle_since is not None and gap <= MAX_GAP_S:
            self.idle_total_s += gap
        if self.idle_since is None or gap > MAX_GAP_S:
            self.idle_since = now

    def idle_gpu_s(self) -> float:
        """How long the GPU has been idle, up to the last sample (0 when busy or without a GPU)."""
        if self.idle_since is None or self._last_at is None:
            return 0.0
        return self._last_at - self.idle_since

    def as_json(self) -> dict[str, Any] | None:
        """The record's `metrics`, or None before the first sample."""
        with self._lock:
            if not self.latest:
                return None
            out: dict[str, Any] = {k: _rounded(k, v) for k, v in self.latest.items()}
            out["peak"] = {k: _rounded(k, v) for k, v in self.peak.items()}
            if "gpu_util_pct" in self.latest:
                out["idle_gpu_s"] = round(self.idle_gpu_s(), 1)
                out["idle_gpu_total_s"] = round(self.idle_total_s, 1)
            return out

    def series(self, points: int = 60) -> dict[str, list[float]]:
        """The recent history per series, thinned to at most `points` values (for sparklines)."""
        with self._lock:
            samples = [s for _t, s in self._history]
        step = max(1, -(-len(samples) // points))
        thinned = samples[::-1][::step][::-1]  # keep the newest sample
        return {key: [s[key] for s in thinned if key in s] for key in SERIES if any(key in s for s in thinned)}


class MetricsReader(threading.Thread):
    """Reads `fetch_job_metrics(follow=True)` into a `MetricsState`; reconnects like the log reader.

    The client itself reconnects while the job runs and ends the stream once it is final; a
    transport failure it gives up on is retried here with backoff; a refusal (a Hub without
    metrics, 404) ends the reader quietly: metrics are a bonus, never a reason to stop following.
    """

    def __init__(self, client: HubClient, job_id: str, namespace: str, state: MetricsState,
                 stop: threading.Event) -> None:
        super().__init__(name=f"hfjob-metrics-{job_id[:8]}", daemon=True)
        self.client, self.job_id, self.namespace = client, job_id, namespace
        self.state, self.stop_event = state, stop
        self.error: BaseException | None = None
        self._events = 0  # since the last try, so a stream that delivered is retried at once

    def run(self) -> None:
        self.error = retry_transient(self.stop_event, self._read, made_progress=self._took_events)

    def _read(self) -> None:
        for event in self.client.metrics(self.job_id, self.namespace):
            if self.stop_event.is_set():
                return
            self.state.add(event, time.monotonic())
            self._events += 1

    def _took_events(self) -> bool:
        took, self._events = self._events > 0, 0
        return took

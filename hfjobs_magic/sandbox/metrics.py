"""Job metrics: samples of a job's process group, in the Hub's `/metrics` SSE event shape.

CPU and memory are summed over every process of the job's process group (the
job's own session, so everything it started and did not detach). Allocations
(`cpu_millicores`, `memory_total_bytes`) are the flavor's, capped at what the
host has, so percentages stay honest on a small machine. The job shares the
host's network, so its own traffic cannot be told apart: `rx_bps`/`tx_bps` are 0.
GPUs come from NVML (`nvidia-ml-py`, optional) for GPU flavors, or from the
`gpu_utilization` fault knob for tests.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field

import psutil

from hfjobs_magic.remote.hardware import BY_NAME, DEFAULT_FLAVOR

FAKE_GPU_ID = "sandbox0"
FAKE_GPU_BYTES = 24 * 1000**3  # the knob's GPU: 24 GB, like an A10G or L4
_ProcKey = tuple[int, float]  # (pid, create_time): a pid reused by a new process is a new key


def cpu_millicores(flavor: str) -> int:
    """The flavor's vCPUs in millicores, at most the host's cores."""
    vcpus = int(BY_NAME.get(flavor, BY_NAME[DEFAULT_FLAVOR]).cpu.split()[0])
    return 1000 * min(vcpus, os.cpu_count() or 1)


def memory_total(flavor: str) -> int:
    """The flavor's RAM in bytes, at most the host's."""
    gigabytes = float(BY_NAME.get(flavor, BY_NAME[DEFAULT_FLAVOR]).ram.split()[0])
    return min(int(gigabytes * 1000**3), psutil.virtual_memory().total)


class MetricStreams:
    """How many metrics streams are open right now (tests watch them close)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self.open += delta


@dataclass
class GroupSampler:
    """CPU rate and memory of one process group; keeps the last CPU times to compute a rate.

    One sampler per stream: two clients watching the same job never reset each other's baseline.
    """

    pgid: int
    _cpu: dict[_ProcKey, float] = field(default_factory=dict)
    _at: float | None = None

    def sample(self) -> tuple[float, int]:
        """(CPU cores busy since the last sample, resident bytes) of the group right now."""
        now, cpu, rss = time.time(), {}, 0
        for proc in _group(self.pgid):
            with contextlib.suppress(psutil.Error):
                with proc.oneshot():
                    times, key = proc.cpu_times(), (proc.pid, proc.create_time())
                    rss += proc.memory_info().rss
                cpu[key] = times.user + times.system
        busy = sum(self._busy_since(key, total, now) for key, total in cpu.items())
        cores = busy / max(now - (self._at or min((k[1] for k in cpu), default=now)), 1e-3)
        self._cpu, self._at = cpu, now
        return cores, rss

    def _busy_since(self, key: _ProcKey, total: float, now: float) -> float:
        """CPU seconds spent since the last sample (all of it for a process born since then)."""
        if key in self._cpu:
            return max(0.0, total - self._cpu[key])
        return total if self._at is None or key[1] >= self._at else 0.0


def _group(pgid: int) -> list[psutil.Process]:
    """Every live process whose process group is `pgid`."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError):
            if os.getpgid(proc.pid) == pgid:
                found.append(proc)
    return found


def host_gpus() -> dict[str, dict]:
    """The host's GPUs through NVML, or {} when it has none or no `nvidia-ml-py`."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return {}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return {}
    try:
        return {_gpu_id(pynvml, i): _nvml_gpu(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount())}
    finally:
        pynvml.nvmlShutdown()


def _gpu_id(pynvml: object, index: int) -> str:
    uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(index))  # type: ignore[attr-defined]
    return (uuid.decode() if isinstance(uuid, bytes) else uuid).removeprefix("GPU-")[:8]


def _nvml_gpu(pynvml: object, index: int) -> dict:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)  # type: ignore[attr-defined]
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)  # type: ignore[attr-defined]
    utilization = pynvml.nvmlDeviceGetUtilizationRates(handle)  # type: ignore[attr-defined]
    return {"utilization": utilization.gpu, "memory_used_bytes": memory.used, "memory_total_bytes": memory.total}


def fake_gpus(utilization: int) -> dict[str, dict]:
    """The test knob's one GPU at `utilization` %, its memory used in the same proportion."""
    if utilization < 0:
        return {}
    return {FAKE_GPU_ID: {"utilization": utilization, "memory_used_bytes": FAKE_GPU_BYTES * utilization // 100,
                          "memory_total_bytes": FAKE_GPU_BYTES}}


def gpus_for(flavor: str, knob: int) -> dict[str, dict]:
    """The knob wins; otherwise a GPU flavor sees the host's GPUs and a CPU flavor none."""
    if knob >= 0:
        return fake_gpus(knob)
    spec = BY_NAME.get(flavor)
    return host_gpus() if spec is not None and spec.is_gpu else {}


def metric_event(sampler: GroupSampler, flavor: str, replica: str, knob: int) -> dict:
    """One event: the fields `fetch_job_metrics` documents and `hf jobs stats` shows."""
    cores, rss = sampler.sample()
    millicores = cpu_millicores(flavor)
    return {
        "cpu_usage_pct": round(100 * cores * 1000 / millicores, 1),
        "cpu_millicores": millicores,
        "memory_used_bytes": rss,
        "memory_total_bytes": memory_total(flavor),
        "rx_bps": 0,
        "tx_bps": 0,
        "gpus": gpus_for(flavor, knob),
        "replica": replica,
    }

"""The built-in hardware table: flavors, specs and prices for offline use.

Prices are the public Jobs prices in USD per hour (billed per minute). The
sandbox serves this table from `/api/jobs/hardware`; checks fall back to it
when the live list cannot be fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hfjobs_magic.cell.spec import JobSpec
    from hfjobs_magic.remote.hub import HubClient


@dataclass(frozen=True)
class Flavor:
    """A hardware flavor and its price, from the Hub's list or the built-in table."""

    name: str
    pretty_name: str
    cpu: str
    ram: str
    storage: str
    usd_per_hour: float
    gpu_model: str | None = None
    gpu_count: int = 0
    vram: str | None = None

    @property
    def is_gpu(self) -> bool:
        return self.gpu_model is not None

    @property
    def usd_per_minute(self) -> float:
        return self.usd_per_hour / 60

    def to_api(self) -> dict:
        """The JSON shape of one entry of `GET /api/jobs/hardware`."""
        micro = round(self.usd_per_minute * 1_000_000)
        accelerator = None
        if self.gpu_model:
            accelerator = {
                "type": "gpu",
                "model": self.gpu_model,
                "quantity": str(self.gpu_count),
                "vram": self.vram,
                "manufacturer": "Nvidia",
            }
        return {
            "name": self.name,
            "prettyName": self.pretty_name,
            "cpu": self.cpu,
            "ram": self.ram,
            "ephemeralStorage": self.storage,
            "accelerator": accelerator,
            "unitCostMicroUSD": micro,
            "unitCostUSD": micro / 1_000_000,
            "unitLabel": "minute",
        }


def _gpu(name, pretty, cpu, ram, storage, price, model, count, vram) -> Flavor:
    return Flavor(name, pretty, cpu, ram, storage, price, model, count, vram)


FLAVORS: tuple[Flavor, ...] = (
    Flavor("cpu-basic", "CPU Basic", "2 vCPU", "16 GB", "50 GB", 0.01),
    Flavor("cpu-upgrade", "CPU Upgrade", "8 vCPU", "32 GB", "50 GB", 0.03),
    Flavor("cpu-performance", "CPU Performance", "32 vCPU", "256 GB", "1024 GB", 1.90),
    Flavor("cpu-xl", "CPU XL", "16 vCPU", "124 GB", "1000 GB", 1.00),
    _gpu("t4-small", "Nvidia T4 - small", "4 vCPU", "15 GB", "50 GB", 0.40, "T4", 1, "16 GB"),
    _gpu("t4-medium", "Nvidia T4 - medium", "8 vCPU", "30 GB", "100 GB", 0.60, "T4", 1, "16 GB"),
    _gpu("l4x1", "1x Nvidia L4", "8 vCPU", "30 GB", "400 GB", 0.80, "L4", 1, "24 GB"),
    _gpu("l4x4", "4x Nvidia L4", "48 vCPU", "186 GB", "3200 GB", 3.80, "L4", 4, "96 GB"),
    _gpu("l40sx1", "1x Nvidia L40S", "8 vCPU", "62 GB", "380 GB", 1.80, "L40S", 1, "48 GB"),
    _gpu("l40sx4", "4x Nvidia L40S", "48 vCPU", "382 GB", "3200 GB", 8.30, "L40S", 4, "192 GB"),
    _gpu("l40sx8", "8x Nvidia L40S", "192 vCPU", "1534 GB", "6500 GB", 23.50, "L40S", 8, "384 GB"),
    _gpu("a10g-small", "Nvidia A10G - small", "4 vCPU", "15 GB", "110 GB", 1.00, "A10G", 1, "24 GB"),
    _gpu("a10g-large", "Nvidia A10G - large", "12 vCPU", "46 GB", "200 GB", 1.50, "A10G", 1, "24 GB"),
    _gpu("a10g-largex2", "2x Nvidia A10G - large", "24 vCPU", "92 GB", "1000 GB", 3.00, "A10G", 2, "48 GB"),
    _gpu("a10g-largex4", "4x Nvidia A10G - large", "48 vCPU", "184 GB", "2000 GB", 5.00, "A10G", 4, "96 GB"),
    _gpu("a100-large", "Nvidia A100 - large", "12 vCPU", "142 GB", "1000 GB", 2.50, "A100", 1, "80 GB"),
    _gpu("a100x4", "4x Nvidia A100 - large", "48 vCPU", "568 GB", "4000 GB", 10.00, "A100", 4, "320 GB"),
    _gpu("a100x8", "8x Nvidia A100 - large", "96 vCPU", "1136 GB", "8000 GB", 20.00, "A100", 8, "640 GB"),
    _gpu("h200", "Nvidia H200", "23 vCPU", "256 GB", "3000 GB", 5.00, "H200", 1, "141 GB"),
    _gpu("h200x2", "2x Nvidia H200", "46 vCPU", "512 GB", "6000 GB", 10.00, "H200", 2, "282 GB"),
    _gpu("h200x4", "4x Nvidia H200", "92 vCPU", "1024 GB", "12000 GB", 20.00, "H200", 4, "564 GB"),
    _gpu("h200x8", "8x Nvidia H200", "184 vCPU", "2048 GB", "24000 GB", 40.00, "H200", 8, "1128 GB"),
    _gpu("rtx-pro-6000", "Nvidia RTX PRO 6000", "23 vCPU", "256 GB", "475 GB", 2.75, "RTX PRO 6000", 1, "96 GB"),
    _gpu("rtx-pro-6000x2", "2x Nvidia RTX PRO 6000", "46 vCPU", "512 GB", "950 GB", 5.50,
         "RTX PRO 6000", 2, "192 GB"),
    _gpu("rtx-pro-6000x4", "4x Nvidia RTX PRO 6000", "92 vCPU", "1024 GB", "1900 GB", 11.00,
         "RTX PRO 6000", 4, "384 GB"),
    _gpu("rtx-pro-6000x8", "8x Nvidia RTX PRO 6000", "184 vCPU", "2048 GB", "3800 GB", 22.00,
         "RTX PRO 6000", 8, "768 GB"),
)

BY_NAME: dict[str, Flavor] = {f.name: f for f in FLAVORS}
DEFAULT_FLAVOR = "cpu-basic"


SERVER_TIMEOUT_S = 30 * 60  # what the Jobs server applies when no timeout is given


def worst_case_cost(spec: JobSpec, client: HubClient | None) -> float | None:
    """Price x timeout (30 min when absent), for the Submit button; None when the price is unknown.

    Never calls the Hub: the live price when this session fetched the hardware list (the
    checks do), else the built-in table.
    """
    live = client.known_hardware() if client is not None else None
    flavor = {f.name: f for f in live or ()}.get(spec.flavor) or BY_NAME.get(spec.flavor)
    return None if flavor is None else flavor.usd_per_hour * (spec.timeout_seconds or SERVER_TIMEOUT_S) / 3600

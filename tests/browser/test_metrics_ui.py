"""A job's metrics in a real JupyterLab (issue 12): the live widget's sparklines, and the lab card's peaks.

The job keeps a CPU busy and holds memory until the test makes its stop file; the sandbox's
`gpu_utilization` knob gives it a GPU. While it runs, the widget's metrics row shows CPU,
memory and GPU values, each with an SVG sparkline (a polyline of several points) and
nothing else; once it ended, saved, with the kernel shut down and the page reloaded, the
record's card (labextension/src/renderer.ts) still shows the metrics with their peaks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hfjobs_magic.sandbox import Sandbox
from tests.browser.lab import JupyterLab

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("lab_extension")]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "metrics.png"
JOB_TIMEOUT_MS = 150_000  # a job installs its script's dependencies with uv before it runs
GPU_PCT = 63
SERIES = ["cpu_pct", "memory_bytes", "gpu_util_pct", "gpu_memory_bytes"]
SAMPLES = 8  # points each sparkline has before the test looks (one sample a second)
# Every metric of the widget has a sparkline of at least `min` samples.
SPARKLINES_DRAWN = """([area, keys, min]) => {
    const rows = area.querySelectorAll('.widget-html-content .hfjob-metrics [data-metric]');
    const drawn = [...rows].filter(row => {
        const line = row.querySelector('svg.hfjob-spark polyline');
        return line && line.getAttribute('points').trim().split(/\\s+/).length >= min;
    }).map(row => row.dataset.metric);
    return keys.every(key => drawn.includes(key));
}"""


def busy_job(stop: Path) -> str:
    """A GPU job's cell that holds ~150 MB and keeps a core busy until `stop` exists."""
    return ("%%hfjob --flavor t4-small --allow-no-push --timeout 5m --yes\nimport os\n"
            "held = b'm' * 150_000_000\nprint('busy', flush=True)\n"
            f"while not os.path.exists({str(stop)!r}):\n    sum(range(10_000))\nprint('done', len(held))")


def percent(text: str) -> int:
    return int(re.search(r"(\d+)%", text).group(1))


def test_widget_sparklines_and_card_metrics(open_notebook, sandbox: Sandbox, jupyterlab: JupyterLab,
                                            tmp_path: Path, dialogs: list[str]):
    sandbox.faults.set(gpu_utilization=GPU_PCT)
    stop = tmp_path / "stop"
    notebook = open_notebook("metrics.ipynb", ["%load_ext hfjobs_magic", busy_job(stop)])
    page = notebook.page
    cell = notebook.cell(1)
    notebook.run(0)
    try:
        notebook.run(1)
        page.wait_for_function(SPARKLINES_DRAWN, arg=[cell.element_handle(), SERIES, SAMPLES],
                               timeout=JOB_TIMEOUT_MS)
        live = cell.locator(".widget-html-content .hfjob-metrics")
        _check_live_metrics(live)
        _screenshot(page, cell.locator("button.jupyter-button", has_text="Cancel job"), live)
    finally:
        stop.touch()
    cell.get_by_text("Job ended COMPLETED").wait_for(timeout=JOB_TIMEOUT_MS)
    record = notebook.wait_for_record(1, "COMPLETED")
    peak = record["metrics"]["peak"]
    assert peak["cpu_pct"] > 5 and peak["memory_bytes"] > 150_000_000 and peak["gpu_util_pct"] == GPU_PCT
    assert dialogs == []

    notebook.save()
    notebook.shut_kernel_down()
    page.reload()
    shown = notebook.cell(1).locator(".hfjob-card[data-stage='COMPLETED'] .hfjob-metrics")
    shown.wait_for()
    assert notebook.cell(1).locator(".widget-html-content").count() == 0  # the card alone, no kernel
    _check_card_metrics(shown, peak)


def _check_live_metrics(live: Any) -> None:
    """CPU, memory, GPU values with their sparklines, and no element but those the view writes."""
    assert re.fullmatch(r"CPU \d+%", _row_text(live, "cpu_pct"))
    assert re.fullmatch(r"Memory [\d.]+ [KMG]B / [\d.]+ [KMG]B", _row_text(live, "memory_bytes"))
    assert _row_text(live, "gpu_util_pct") == f"GPU {GPU_PCT}%"
    assert _row_text(live, "gpu_memory_bytes") == f"GPU memory {24 * GPU_PCT / 100:.1f} GB / 24.0 GB"
    tags = live.evaluate("box => [...box.querySelectorAll('*')].map(e => e.tagName.toLowerCase())")
    assert set(tags) == {"span", "b", "svg", "polyline"}, tags
    assert live.locator("svg.hfjob-spark").count() == len(SERIES)
    for line in live.locator("svg.hfjob-spark polyline").all():
        box = line.bounding_box()
        assert box is not None and box["width"] > 0  # drawn on the page, not just in the markup


def _check_card_metrics(shown: Any, peak: dict[str, float]) -> None:
    """The card's rows: the last values with the job's peaks, as the saved record has them."""
    cpu = shown.locator("[data-metric='cpu_pct']").inner_text()
    assert cpu.startswith("CPU ") and abs(percent(cpu.split("peak")[1]) - peak["cpu_pct"]) <= 0.5
    memory = shown.locator("[data-metric='memory_bytes'] .hfjob-metric-peak").inner_text()
    assert re.fullmatch(r" ?\(peak [\d.]+ MB\)", memory), memory
    assert abs(float(re.search(r"[\d.]+", memory).group()) - peak["memory_bytes"] / 1e6) <= 0.1
    gpu = shown.locator("[data-metric='gpu_util_pct']").inner_text()
    assert gpu.startswith(f"GPU {GPU_PCT}%") and gpu.endswith(f"(peak {GPU_PCT}%)"), gpu
    assert shown.locator("[data-metric='gpu_memory_bytes']").inner_text().startswith("GPU memory")


def _row_text(live: Any, key: str) -> str:
    return live.locator(f"[data-metric='{key}']").inner_text().strip()


def _screenshot(page: Any, top: Any, bottom: Any, margin: float = 8) -> None:
    """For the README: the live view from its Cancel button down to its metrics row."""
    top.scroll_into_view_if_needed()
    bottom.scroll_into_view_if_needed()
    first, last = top.bounding_box(), bottom.bounding_box()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), clip={
        "x": last["x"] - margin, "y": first["y"] - margin, "width": last["width"] + 2 * margin,
        "height": last["y"] + last["height"] - first["y"] + 2 * margin})

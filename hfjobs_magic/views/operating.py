"""How the views say what operating a job adds to the record: metrics (with sparklines), notices, schedules.

Every string here is built from numbers and from the record; whatever may come from outside is
escaped (`html.escape`) before it reaches HTML, the sparklines' SVG included.
"""

from __future__ import annotations

import html
from typing import Any

SPARK_WIDTH, SPARK_HEIGHT = 90, 18
NOTICE_STYLE = "color:#b45309;background:#fffbeb;border-left:3px solid #d97706;padding:2px 6px;margin:2px 0"
WARN_MARK = "<b style='color:#d97706'>!</b>"  # bundle.MARKS["warn"]: a text mark renders in any font, an emoji may not


def size(value: float | None) -> str:
    """Bytes in decimal units, as `hf jobs stats` prints them."""
    amount = float(value or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if amount < 1000 or unit == "TB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} TB"


def metric_parts(metrics: dict[str, Any]) -> list[tuple[str, str, str, float | None]]:
    """(label, value, series key, top of scale) per metric the job has; no GPU, no GPU rows."""
    parts = [("CPU", f"{metrics.get('cpu_pct', 0):.0f}%", "cpu_pct", None),
             ("Memory", f"{size(metrics.get('memory_bytes'))} / {size(metrics.get('memory_total_bytes'))}",
              "memory_bytes", metrics.get("memory_total_bytes"))]
    if "gpu_util_pct" in metrics:
        parts += [("GPU", f"{metrics['gpu_util_pct']:.0f}%", "gpu_util_pct", 100.0),
                  ("GPU memory", f"{size(metrics.get('gpu_memory_bytes'))} / "
                   f"{size(metrics.get('gpu_memory_total_bytes'))}", "gpu_memory_bytes",
                   metrics.get("gpu_memory_total_bytes"))]
    return parts


def metrics_text(metrics: dict[str, Any] | None) -> str:
    """One line: latest values, then peaks."""
    if not metrics:
        return ""
    latest = ", ".join(f"{label} {value}" for label, value, _key, _top in metric_parts(metrics))
    peak = metrics.get("peak") or {}
    peaks = [f"CPU {peak['cpu_pct']:.0f}%" if "cpu_pct" in peak else "",
             f"memory {size(peak['memory_bytes'])}" if "memory_bytes" in peak else "",
             f"GPU {peak['gpu_util_pct']:.0f}%" if "gpu_util_pct" in peak else ""]
    return f"{latest} (peak {', '.join(p for p in peaks if p)})"


def sparkline(values: list[float], top: float | None = None) -> str:
    """A small inline SVG line of `values` (oldest first), scaled to `top` or to their maximum."""
    if len(values) < 2:
        return ""
    high = max(float(top or 0), max(values), 1e-9)
    step = SPARK_WIDTH / (len(values) - 1)
    points = " ".join(f"{i * step:.1f},{SPARK_HEIGHT - 1 - (v / high) * (SPARK_HEIGHT - 2):.1f}"
                      for i, v in enumerate(values))
    return (f"<svg class='hfjob-spark' width='{SPARK_WIDTH}' height='{SPARK_HEIGHT}' "
            f"viewBox='0 0 {SPARK_WIDTH} {SPARK_HEIGHT}' style='vertical-align:middle'>"
            f"<polyline fill='none' stroke='#2563eb' stroke-width='1.5' points='{html.escape(points, quote=True)}'/>"
            "</svg>")


def metrics_html(metrics: dict[str, Any] | None, series: dict[str, list[float]] | None = None) -> str:
    """The widget's metrics row: each value with a sparkline of the last minutes."""
    if not metrics:
        return ""
    cells = [f"<span data-metric='{html.escape(key, quote=True)}' style='margin-right:1.2em'>"
             f"<b>{html.escape(label)}</b> {html.escape(value)} {sparkline((series or {}).get(key, []), top)}</span>"
             for label, value, key, top in metric_parts(metrics)]
    return f"<div class='hfjob-metrics'>{''.join(cells)}</div>"


def notices_of(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(n.get("kind", "")), str(n.get("text", ""))) for n in record.get("notices") or []]


def notices_html(record: dict[str, Any]) -> str:
    return "".join(f"<div data-notice='{html.escape(kind, quote=True)}' style='{NOTICE_STYLE}'>{WARN_MARK} "
                   f"{html.escape(text)}</div>" for kind, text in notices_of(record))


def schedule_text(record: dict[str, Any]) -> str:
    schedule = record.get("schedule") or {}
    if not schedule:
        return ""
    runs = ", ".join(schedule.get("next_runs") or []) or "unknown"
    return f"scheduled {schedule.get('schedule')} (UTC) as {schedule.get('id')}; next runs {runs}"

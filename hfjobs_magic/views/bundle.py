"""The notebook record: `application/vnd.hfjob+json` + `text/html` + `text/plain`.

The HTML is plain tables, `<details>` and inline styles only, so it reads well in
`nbconvert --to html` and on GitHub (which drops classes and scripts). Every
string that came from the job is escaped.
"""

from __future__ import annotations

import html
from typing import Any

from hfjobs_magic.record import MIME

STAGE_COLOURS = {
    "SCHEDULING": "#6b7280",
    "RUNNING": "#2563eb",
    "COMPLETED": "#16a34a",
    "ERROR": "#dc2626",
    "CANCELED": "#d97706",
    "DELETED": "#6b7280",
}


def safe_link(url: str | None, text: str) -> str:
    """A link only for http(s) URLs; anything else is shown as text."""
    label = html.escape(text)
    if url and url.startswith(("https://", "http://")):
        return f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener">{label}</a>'
    return label


def money(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def duration(seconds: float | None) -> str:
    seconds = int(seconds or 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def push_lines(record: dict[str, Any]) -> list[str]:
    """One line per push target, saying whether the storage confirmed it."""
    out = []
    for target in record.get("push") or []:
        commits = target.get("commits") or []
        mark = "verified" if target.get("verified") else "not verified"
        where = f"{target.get('repo_type', 'model')} {target.get('repo_id')}"
        out.append(f"{where}: {len(commits)} commit(s), {mark}")
    return out


def to_text(record: dict[str, Any]) -> str:
    lines = [
        f"HF Job {record['id']} [{record['stage']}] on {record['flavor']}",
        f"  {record['url']}",
        f"  running {duration(record.get('duration_s'))}, cost {money(record.get('cost_usd'))}",
    ]
    if record.get("message"):
        lines.append(f"  {record['message']}")
    lines += [f"  push: {p}" for p in push_lines(record)]
    return "\n".join(lines)


def to_html(record: dict[str, Any]) -> str:
    stage = str(record.get("stage", ""))
    colour = STAGE_COLOURS.get(stage, "#6b7280")
    badge = (
        f'<span style="background:{colour};color:#fff;border-radius:4px;padding:1px 6px;'
        f'font-weight:600">{html.escape(stage)}</span>'
    )
    rows = [
        ("Job", safe_link(record.get("url"), record.get("id", ""))),
        ("Stage", badge + (f" {html.escape(record['message'])}" if record.get("message") else "")),
        ("Flavor", html.escape(str(record.get("flavor")))),
        ("Running", html.escape(duration(record.get("duration_s")))),
        ("Cost", html.escape(money(record.get("cost_usd")))),
    ]
    rows += [("Push", html.escape(line)) for line in push_lines(record)]
    table = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>"
                    for k, v in rows)
    tail = record.get("log_tail") or []
    logs = ""
    if tail:
        body = html.escape("\n".join(tail))
        logs = f"<details><summary>Last {len(tail)} log lines</summary><pre>{body}</pre></details>"
    return f"<div><table>{table}</table>{logs}</div>"


def to_bundle(record: dict[str, Any]) -> dict[str, Any]:
    return {MIME: record, "text/html": to_html(record), "text/plain": to_text(record)}


class RecordDisplay:
    """The one display a job cell leaves in the notebook, updated in place by display id."""

    def __init__(self, min_interval: float = 1.0) -> None:
        self._handle: Any = None
        self._min_interval = min_interval
        self._last = 0.0

    def show(self, record: dict[str, Any]) -> None:
        from IPython.display import display

        self._handle = display(to_bundle(record), raw=True, display_id=True)

    def update(self, record: dict[str, Any], *, force: bool = False) -> None:
        import time

        now = time.monotonic()
        if self._handle is None:
            self.show(record)
        elif force or now - self._last >= self._min_interval:
            self._handle.update(to_bundle(record), raw=True)
        else:
            return
        self._last = now

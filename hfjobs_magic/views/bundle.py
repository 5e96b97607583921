"""The notebook record: `application/vnd.hfjob+json` + `text/html` + `text/plain`.

The HTML is plain tables, `<details>` and inline styles only, so it reads well in
`nbconvert --to html` and on GitHub (which drops classes and scripts). Every
string that came from the job is escaped.
"""

from __future__ import annotations

import html
import time
from typing import Any

from hfjobs_magic.cell.persist import human_size
from hfjobs_magic.jobs.record import FINAL_STAGES, MIME
from hfjobs_magic.money import usd
from hfjobs_magic.views.operating import metrics_text, notices_of, schedule_text

STAGE_COLOURS = {
    "SCHEDULING": "#6b7280",
    "RUNNING": "#2563eb",
    "COMPLETED": "#16a34a",
    "ERROR": "#dc2626",
    "CANCELED": "#d97706",
    "DELETED": "#6b7280",
    "SCHEDULED": "#7c3aed",
}
# Status marks as coloured text, not emoji: they render in any font (a terminal, a bare browser, nbconvert).
MARKS = {"ok": ("✓", "#16a34a"), "wait": ("…", "#6b7280"), "warn": ("!", "#d97706"), "fail": ("✗", "#dc2626"),
         "skip": ("–", "#6b7280")}


def safe_link(url: str | None, text: str) -> str:
    """A link only for http(s) URLs; anything else is shown as text."""
    label = html.escape(text)
    if url and url.startswith(("https://", "http://")):
        return f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener">{label}</a>'
    return label


def duration(seconds: float | None) -> str:
    seconds = int(seconds or 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def push_states(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(level, text) per push target; level is "ok", "wait", "warn" (nothing landed) or "fail"."""
    return [_push_state(target, record) for target in record.get("push") or []]


def _push_state(target: dict[str, Any], record: dict[str, Any]) -> tuple[str, str]:
    kind = target.get("repo_type", "model")
    where = target.get("repo_id") if kind in ("s3", "gs", "bucket") else f"{kind} {target.get('repo_id')}"
    count = len(target.get("commits") or [])
    noun = {"s3": "object(s)", "gs": "object(s)", "bucket": "file(s)"}.get(kind, "commit(s)")
    if kind == "bucket" and count:
        noun += f" ({human_size(sum(int(c.get('size') or 0) for c in target['commits']))})"
    said = f"; the job reported {len(target['reported'])} push(es)" if target.get("reported") else ""
    if target.get("failure"):
        return "fail", f"{where}: push FAILED: {target['failure']} ({count} {noun} landed)"
    if count and target.get("verified"):
        return "ok", f"{where}: {count} {noun}, verified{said}"
    if target.get("check_error"):
        return "warn", f"{where}: not verified, {target['check_error']}{said}"
    if record.get("stage") in FINAL_STAGES and target.get("checked"):
        return "warn", f"{where}: NOTHING was pushed there; the job's results are lost{said}"
    return "wait", f"{where}: nothing yet{said}"


def push_html(level: str, text: str) -> str:
    """One push state as escaped HTML, with a mark and a colour that say how it stands."""
    return f"<span style='color:{MARKS.get(level, MARKS['wait'])[1]}'>{mark(level)} {html.escape(text)}</span>"


def mark(level: str) -> str:
    """A status's text mark, bold in its colour."""
    sign, colour = MARKS.get(level, MARKS["wait"])
    return f"<b style='color:{colour}'>{sign}</b>"


def push_lines(record: dict[str, Any]) -> list[str]:
    """One line per push target, saying what the storage confirmed."""
    return [text for _level, text in push_states(record)]


def to_text(record: dict[str, Any]) -> str:
    lines = [
        f"HF Job {record['id']} [{record['stage']}] on {record['flavor']}",
        f"  {record['url']}",
    ]
    if not record.get("schedule"):  # a schedule runs nothing itself: its runs are jobs of their own
        lines.append(f"  running {duration(record.get('duration_s'))}, cost {usd(record.get('cost_usd'))}")
    if record.get("message"):
        lines.append(f"  {record['message']}")
    if record.get("schedule"):
        lines.append(f"  {schedule_text(record)}")
    if record.get("metrics"):
        lines.append(f"  {metrics_text(record['metrics'])}")
    lines += [f"  notice: {text}" for _kind, text in notices_of(record)]
    lines += [f"  push: {p}" for p in push_lines(record)]
    if summary := returns_line(record):
        lines.append(f"  {summary}")
    if record.get("pulled"):
        lines.append(f"  pull: {record['pulled']}")
    return "\n".join(lines)


def returns_line(record: dict[str, Any]) -> str:
    """"result, counts <- job 6b0c...": the names a completed job set in this kernel."""
    names = [r["name"] for r in record.get("returns") or []]
    return f"{', '.join(names)} <- job {record['id']}" if names else ""


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
    ]
    if not record.get("schedule"):
        rows += [("Running", html.escape(duration(record.get("duration_s")))),
                 ("Cost", html.escape(usd(record.get("cost_usd"))))]
    if record.get("schedule"):
        rows.append(("Schedule", html.escape(schedule_text(record))))
    if record.get("metrics"):
        rows.append(("Metrics", html.escape(metrics_text(record["metrics"]))))
    rows += [("Notice", html.escape(text)) for _kind, text in notices_of(record)]
    rows += [("Push", push_html(level, text)) for level, text in push_states(record)]
    if summary := returns_line(record):
        rows.append(("Returned", html.escape(summary)))
    if record.get("pulled"):
        rows.append(("Pulled", html.escape(str(record["pulled"]))))
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


def _in_kernel() -> bool:
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


class RecordDisplay:
    """The one display a job cell leaves in the notebook, updated in place by display id."""

    def __init__(self, min_interval: float = 1.0) -> None:
        self._handle: Any = None
        self._min_interval = min_interval
        self._last = 0.0
        # A terminal cannot update a display in place: each update would print the record again.
        self._in_place = _in_kernel()

    def reserve(self) -> None:
        """An empty display now, while the cell runs, that `show` fills later.

        In JupyterLab, output sent from a widget's callback (a Submit click) reaches
        no cell (it goes to the log console); an update of a display the cell made does.
        """
        from IPython.display import display

        self._handle = display({"text/plain": ""}, raw=True, display_id=True)

    def show(self, record: dict[str, Any]) -> None:
        from IPython.display import display

        if self._handle is not None:  # reserved: fill it in place
            self._handle.update(to_bundle(record), raw=True)
            return
        self._handle = display(to_bundle(record), raw=True, display_id=True)

    def update(self, record: dict[str, Any], *, force: bool = False) -> None:
        now = time.monotonic()
        if self._handle is None:
            self.show(record)
        elif force or (self._in_place and now - self._last >= self._min_interval):
            self._handle.update(to_bundle(record), raw=True)
        else:
            return
        self._last = now

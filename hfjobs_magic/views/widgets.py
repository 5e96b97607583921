"""The widget view: checklist, Submit/Re-check/Cancel, stage badge, cost, and a bounded log pane.

Fed only by `Update`s from the watcher (at most a few per second); it never
calls the Hub. The log pane keeps the last N lines, so a job printing a
million lines costs the browser no more than one printing a hundred.
"""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from hfjobs_magic.checkresult import CheckResult, failing
from hfjobs_magic.jobs.progress import extend
from hfjobs_magic.jobs.record import IDLE_NOTICE, Update, unpushed
from hfjobs_magic.mask import hide_token_literals
from hfjobs_magic.money import usd
from hfjobs_magic.views import ansi
from hfjobs_magic.views.bundle import STAGE_COLOURS, duration, mark, push_html, push_states, returns_line, safe_link
from hfjobs_magic.views.operating import metrics_html, notices_html, notices_of, schedule_text

ERROR_STYLE = "color:#dc2626"


def checks_html(results: list[CheckResult]) -> str:
    """One row per check; `data-check`/`data-status` say which and how, for tests and user styles."""
    rows = []
    for r in results:
        status = html.escape(r.status, quote=True)
        fix = f"<br><i>Fix: {html.escape(r.fix)}</i>" if r.fix and r.status != "ok" else ""
        rows.append(f"<tr data-check='{html.escape(r.id, quote=True)}' data-status='{status}'>"
                    f"<td title='{status}'>{mark(r.status)}</td><td><b>{html.escape(r.id)}</b></td>"
                    f"<td>{html.escape(r.message)}{fix}</td></tr>")
    return f"<table class='hfjob-checks'>{''.join(rows)}</table>"


def error_html(what: str, err: BaseException) -> str:
    """An error from a button's callback, shown in the widget (JupyterLab sends callback output elsewhere)."""
    detail = hide_token_literals(str(err)) or type(err).__name__
    return f"<b style='{ERROR_STYLE}'>{html.escape(what)}:</b> {html.escape(detail)}"


class JobWidget:
    def __init__(self, log_lines: int = 40, action: str = "Submit") -> None:
        self._lines: deque[str] = deque(maxlen=log_lines)
        self.checks = w.HTML()
        self.action = action  # "Schedule" for a --schedule cell: nothing runs now
        fit = {"width": "auto", "min_width": "max-content"}  # a label such as "Submit (worst case $12.00)" is never cut
        self.submit_button = w.Button(description=action, button_style="primary", icon="play", layout=w.Layout(**fit))
        self.recheck_button = w.Button(description="Re-check", icon="refresh", layout=w.Layout(**fit))
        self.cancel_button = w.Button(description="Cancel job", button_style="danger", icon="stop",
                                      layout=w.Layout(**fit))
        self.cancel_button.layout.display = "none"
        self.status = w.HTML()
        self.pushes = w.HTML()  # the push panel: what the storage confirmed, live
        self.metrics = w.HTML()  # CPU, memory, GPU with sparklines of the last minutes
        self.notices = w.HTML()  # a long wait for hardware, an idle GPU
        self.idle_cancel_button = w.Button(description="Cancel: GPU idle", button_style="warning", icon="stop",
                                           layout=w.Layout(**fit))
        self.idle_cancel_button.layout.display = "none"
        self.logs = w.HTML(layout=w.Layout(max_height="24em", overflow="auto"))
        self.outcome = w.HTML()
        self.box = w.VBox([self.checks, w.HBox([self.submit_button, self.recheck_button, self.cancel_button]),
                           self.status, self.notices, self.idle_cancel_button, self.metrics, self.pushes, self.logs,
                           self.outcome])
        self._submit: Callable[[], None] | None = None
        self._recheck: Callable[[], list[CheckResult]] | None = None
        self._cancel: Callable[[], None] | None = None
        self._worst_case = ""
        self.submit_button.on_click(lambda _b: self.submit())
        self.recheck_button.on_click(lambda _b: self._run_recheck())
        self.cancel_button.on_click(lambda _b: self._run_cancel())
        self.idle_cancel_button.on_click(lambda _b: self._run_cancel())

    # -- wiring -----------------------------------------------------------------------------
    def display(self) -> None:
        from IPython.display import display

        display(self.box)

    def on_submit(self, callback: Callable[[], None]) -> None:
        self._submit = callback

    def on_recheck(self, callback: Callable[[], list[CheckResult]]) -> None:
        self._recheck = callback

    def on_cancel(self, callback: Callable[[], None]) -> None:
        self._cancel = callback
        self.cancel_button.layout.display = None

    # -- actions ----------------------------------------------------------------------------
    def show_checks(self, results: list[CheckResult], worst_case: str | None = None) -> None:
        """The checklist; Submit is enabled only when none fails. `worst_case` (kept for Re-check) labels it."""
        if worst_case is not None:
            self._worst_case = worst_case
        self.checks.value = checks_html(results)
        blocked = bool(failing(results))
        self.submit_button.disabled = blocked
        self.submit_button.tooltip = "fix the failing checks first" if blocked else "start the job"
        label = f" (worst case {self._worst_case})" if self._worst_case and self.action == "Submit" else ""
        self.submit_button.description = f"{self.action}{label}"

    def submit(self) -> None:
        if self.submit_button.disabled or self._submit is None:
            return
        self.submit_button.disabled = self.recheck_button.disabled = True
        self.status.value = "Scheduling…" if self.action == "Schedule" else "Submitting…"
        try:
            self._submit()
        except Exception as err:  # shown where the user looks, not lost in a callback
            self.status.value = error_html("Submission failed", err)
            self.submit_button.disabled = self.recheck_button.disabled = False

    def _run_recheck(self) -> None:
        """Run the checks again (e.g. after a login); the button says so while they run."""
        if self._recheck is None:
            return
        self.submit_button.disabled = self.recheck_button.disabled = True
        self.recheck_button.description = "Checking…"
        self.status.value = ""
        try:
            self.show_checks(self._recheck())
        except Exception as err:
            self.status.value = error_html("Re-check failed", err)
        finally:
            self.recheck_button.description = "Re-check"
            self.recheck_button.disabled = False

    def _run_cancel(self) -> None:
        if self._cancel is None:
            return
        self.cancel_button.disabled = True
        self.cancel_button.description = "Cancelling…"
        try:
            self._cancel()
        except Exception as err:
            self.outcome.value = error_html("Cancel failed", err)
            self.cancel_button.disabled = False
            self.cancel_button.description = "Cancel job"

    # -- updates from the watcher -----------------------------------------------------------
    def started(self, record: dict[str, Any]) -> None:
        self.submit_button.layout.display = self.recheck_button.layout.display = "none"
        self._render_status(record)

    def detached(self, job_id: str) -> None:
        """--detach: nothing follows the job here, so say how to see it again."""
        self.outcome.value = (f"Detached: the job runs on. Follow it with <code>%hfjob_attach {html.escape(job_id)}"
                              f"</code>, cancel it with <code>%hfjob_cancel {html.escape(job_id)}</code>.")

    def update(self, update: Update) -> None:
        extend(self._lines, update.lines[-(self._lines.maxlen or 0):])
        self._render_status(update.record)
        self._render_operating(update)
        self._render_pushes(update.record)
        if update.lines:
            body = "\n".join(ansi.to_html(line) for line in self._lines)
            self.logs.value = f"<pre style='margin:0'>{body}</pre>"
        if update.final:
            self.cancel_button.layout.display = self.idle_cancel_button.layout.display = "none"
            self._render_outcome(update.record)

    def _render_status(self, record: dict[str, Any]) -> None:
        stage = record.get("stage", "")
        colour = STAGE_COLOURS.get(stage, "#6b7280")
        self.status.value = (
            f"<span style='background:{colour};color:#fff;border-radius:4px;padding:1px 6px'>"
            f"{html.escape(stage)}</span> {safe_link(record.get('url'), record.get('id', ''))} · "
            f"{html.escape(str(record.get('flavor')))} · {duration(record.get('duration_s'))} · "
            f"{usd(record.get('cost_usd'))}"
        )

    def _render_operating(self, update: Update) -> None:
        """Metrics with sparklines, the notices, and a Cancel next to an idle-GPU warning."""
        record = update.record
        if record.get("metrics"):
            self.metrics.value = metrics_html(record["metrics"], update.series)
        self.notices.value = notices_html(record)
        idle = any(kind == IDLE_NOTICE for kind, _text in notices_of(record))
        self.idle_cancel_button.layout.display = None if idle and self._cancel and not update.final else "none"

    def scheduled(self, record: dict[str, Any]) -> None:
        """A --schedule cell: nothing runs now; say when it will, and how to list or stop it."""
        self.started(record)
        job = html.escape(record.get("id", ""))
        self.outcome.value = (f"<b>{html.escape(schedule_text(record))}</b><br>List scheduled jobs with "
                              f"<code>%hfjob_ps --scheduled</code>; stop this one with "
                              f"<code>%hfjob_unschedule {job}</code>.")

    def _render_pushes(self, record: dict[str, Any]) -> None:
        states = push_states(record)
        rows = "".join(f"<div>{push_html(level, text)}</div>" for level, text in states)
        self.pushes.value = f"<div><b>Pushes</b> (as the storage reports them){rows}</div>" if states else ""

    def _render_outcome(self, record: dict[str, Any]) -> None:
        good = record.get("stage") == "COMPLETED" and not unpushed(record)
        colour = "#16a34a" if good else "#dc2626"
        message = html.escape(record.get("message") or "")
        lost = [t["repo_id"] for t in unpushed(record)]
        warning = f" <b>but nothing reached {html.escape(', '.join(lost))}: its results are lost</b>" if lost else ""
        returned = f" · {html.escape(returns_line(record))}" if record.get("returns") else ""
        self.outcome.value = (f"<b style='color:{colour}'>Job ended {html.escape(record.get('stage', ''))}</b>"
                              f"{warning} {message}{returned}")

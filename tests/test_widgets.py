"""The widget view's logic without a browser (tests/browser drives it in a real JupyterLab)."""

from __future__ import annotations

from hfjobs_magic.checks import CheckResult
from hfjobs_magic.views.widgets import JobWidget, checks_html

FAILING = [CheckResult("token", "fail", "your token is read-only", "log in with a write token"),
           CheckResult("flavor", "ok", "cpu-basic", "")]
PASSING = [CheckResult("token", "ok", "logged in as alice (write token)", ""),
           CheckResult("flavor", "warn", "<b>idle GPU</b>", "drop --flavor")]


def test_rows_carry_the_check_and_its_status_and_escape_text():
    table = checks_html(PASSING)
    assert "data-check='token' data-status='ok'" in table and "data-status='warn'" in table
    assert "&lt;b&gt;idle GPU&lt;/b&gt;" in table and "<b>idle GPU</b>" not in table
    assert "Fix: drop --flavor" in table


def test_recheck_enables_submit_and_keeps_the_worst_case():
    widget = JobWidget()
    results = iter([PASSING])
    widget.on_recheck(lambda: next(results))
    widget.show_checks(FAILING, worst_case="$0.50")
    assert widget.submit_button.disabled and widget.submit_button.description == "Submit (worst case $0.50)"
    widget.recheck_button.click()
    assert not widget.submit_button.disabled and widget.submit_button.description == "Submit (worst case $0.50)"
    assert widget.recheck_button.description == "Re-check" and not widget.recheck_button.disabled


def test_a_recheck_that_raises_is_shown_masked_and_submit_stays_disabled():
    widget = JobWidget()

    def broken() -> list[CheckResult]:
        raise RuntimeError("Hub down for hf_abcdefghijklmnopqrstuvwxyz123456")

    widget.on_recheck(broken)
    widget.show_checks(FAILING)
    widget.recheck_button.click()
    assert "Re-check failed" in widget.status.value and "Hub down" in widget.status.value
    assert "hf_abcdefghijklmnopqrstuvwxyz123456" not in widget.status.value
    assert widget.submit_button.disabled and not widget.recheck_button.disabled


def test_a_failed_cancel_is_shown_and_can_be_retried():
    widget = JobWidget()

    def refuse() -> None:
        raise RuntimeError("409 job already finished <script>")

    widget.on_cancel(refuse)
    widget.cancel_button.click()
    assert "Cancel failed" in widget.outcome.value and "&lt;script&gt;" in widget.outcome.value
    assert not widget.cancel_button.disabled


def test_a_detached_job_says_how_to_follow_it():
    from hfjobs_magic.views.widgets import JobWidget

    widget = JobWidget()
    widget.detached("<job-1>")
    assert "%hfjob_attach &lt;job-1&gt;" in widget.outcome.value and "%hfjob_cancel" in widget.outcome.value

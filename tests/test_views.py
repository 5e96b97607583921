"""Views: escaping, bounded output, terminal semantics; the widget fed by real updates."""

from __future__ import annotations

import io

from hfjobs_magic.jobs.record import MIME, Update
from hfjobs_magic.views import ansi
from hfjobs_magic.views.bundle import safe_link, to_bundle, to_html
from hfjobs_magic.views.terminal import collapse_cr
from hfjobs_magic.views.text import TextView

EVIL = "<img src=x onerror=alert(1)><script>alert(2)</script>"


def record(**changes) -> dict:
    base = {
        "id": "abc123", "namespace": "alice", "url": "http://127.0.0.1:1/jobs/alice/abc123", "flavor": "cpu-basic",
        "stage": "RUNNING", "message": None, "created_at": None, "started_at": None, "finished_at": None,
        "duration_s": 65.0, "cost_usd": 0.0002, "usd_per_hour": 0.01, "notebook": None, "cell": None,
        "push": [], "log_lines": 0, "log_tail": [],
    }
    return base | changes


def test_bundle_has_the_three_mime_types_and_escapes_job_text():
    bundle = to_bundle(record(log_tail=[EVIL], message=EVIL, push=[
        {"repo_id": EVIL, "repo_type": "dataset", "commits": [], "verified": False}]))
    assert set(bundle) == {MIME, "text/html", "text/plain"}
    html = bundle["text/html"]
    assert "<img" not in html and "<script>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_links_only_for_http_urls():
    assert safe_link("javascript:alert(1)", "x") == "x"
    assert safe_link("https://huggingface.co/jobs/a/b", "b").startswith('<a href="https://huggingface.co')
    assert "javascript" not in to_html(record(url="javascript:alert(1)"))


def test_text_view_is_bounded_whatever_the_log_size():
    out = io.StringIO()
    view = TextView(head=100, tail=10, out=out)
    view.started(record())
    for start in range(0, 1_000_000, 10_000):
        view.update(Update(record(), [f"line {i}" for i in range(start, start + 10_000)]))
    view.update(Update(record(stage="COMPLETED"), [], final=True))
    text = out.getvalue()
    assert len(text) < 20_000
    assert "line 0\n" in text and "line 99\n" in text and "line 100\n" not in text
    assert "line 999999" in text and "999890 lines not shown" in text
    assert "ended COMPLETED" in text


def test_carriage_returns_collapse_like_a_terminal():
    assert collapse_cr("progress 10%\rprogress 50%\rprogress 100%") == "progress 100%"
    assert collapse_cr("done\r") == "done"
    assert collapse_cr("plain") == "plain"


def test_ansi_colours_become_escaped_spans():
    html = ansi.to_html("\x1b[31mred <b>\x1b[0m plain \x1b[2K")
    assert '<span style="color:#c00">red &lt;b&gt;</span>' in html
    assert html.endswith(" plain ")


def test_widget_log_pane_keeps_only_the_last_lines_and_escapes_them():
    from hfjobs_magic.views.widgets import JobWidget

    widget = JobWidget(log_lines=5)
    widget.started(record())
    for start in range(0, 100_000, 5_000):
        widget.update(Update(record(), [f"row {i}" for i in range(start, start + 5_000)]))
    widget.update(Update(record(stage="COMPLETED"), [EVIL, "tqdm 1%\rtqdm 100%"], final=True))
    pane = widget.logs.value
    assert pane.count("\n") == 4 and "row 99999" in pane and "row 99994" not in pane
    assert "<img" not in pane and "&lt;img" in pane and "tqdm 100%" in pane and "tqdm 1%" not in pane
    assert "COMPLETED" in widget.outcome.value
    assert widget.cancel_button.layout.display == "none"


def test_money_reads_one_way_and_never_shows_a_paid_job_as_free():
    from hfjobs_magic.money import usd

    assert usd(0.00001) == "< $0.0001" and usd(0.00009999) == "< $0.0001" and usd(0) == "$0.00"
    assert usd(0.0001) == "$0.0001" and usd(0.0042) == "$0.0042" and usd(0.5) == "$0.50"
    assert usd(0.75) == "$0.75" and usd(12.345) == "$12.35" and usd(None) == "unknown"


def test_every_view_prints_a_tiny_cost_the_same_way():
    from hfjobs_magic.views.widgets import JobWidget

    tiny = record(cost_usd=0.00002, stage="COMPLETED")
    out = io.StringIO()
    TextView(out=out).update(Update(tiny, [], final=True))
    widget = JobWidget()
    widget.update(Update(tiny, [], final=True))
    bundle = to_bundle(tiny)
    for shown in (out.getvalue(), widget.status.value, bundle["text/plain"], bundle["text/html"]):
        assert "&lt; $0.0001" in shown or "< $0.0001" in shown, shown
        assert "$0.0000" not in shown


def test_a_terminal_gets_the_record_twice_not_once_a_second(capsys):
    """Outside a kernel a display cannot be updated in place: only the first and the final one print."""
    from IPython.core.interactiveshell import InteractiveShell

    from hfjobs_magic.views.bundle import RecordDisplay

    InteractiveShell.instance()
    display = RecordDisplay(min_interval=0.0)
    display.show(record())
    for _ in range(50):
        display.update(record())
    display.update(record(stage="COMPLETED"), force=True)
    printed = capsys.readouterr().out
    assert printed.count("HF Job abc123") == 2 and "[COMPLETED]" in printed


# Characters an emoji font draws (and a machine without one shows as boxes): pictographs, the variation
# selector that asks for emoji presentation, and the dingbats the old marks were.
EMOJI = {0xFE0F, 0x2705, 0x274C, 0x26A0, 0x231B, 0x23F3, 0x2796, 0x2714, 0x2716}


def has_emoji(text: str) -> bool:
    return any(ord(c) >= 0x1F000 or ord(c) in EMOJI for c in text)


def test_status_marks_are_text_any_font_can_draw():
    from hfjobs_magic.checkresult import CheckResult
    from hfjobs_magic.views.bundle import push_html
    from hfjobs_magic.views.widgets import checks_html

    results = [CheckResult("token", s, f"{s} message") for s in ("ok", "warn", "fail", "skip")]
    table = checks_html(results)
    assert not has_emoji(table), table
    for status, sign in (("ok", "✓"), ("warn", "!"), ("fail", "✗"), ("skip", "–")):
        assert f"data-status='{status}'><td title='{status}'><b style='color:" in table
        assert f"'>{sign}</b></td><td><b>token</b>" in table
    pushed = record(push=[{"repo_id": "alice/x", "repo_type": "model", "commits": [{"oid": "1"}], "verified": True}])
    for level in ("ok", "wait", "warn", "fail"):
        assert not has_emoji(push_html(level, "x"))
    assert not has_emoji(to_html(pushed)) and "✓" in to_html(pushed)


def test_the_submit_label_with_its_worst_case_is_never_cut():
    from hfjobs_magic.views.widgets import JobWidget

    widget = JobWidget()
    widget.show_checks([], worst_case="$1234.56")
    assert widget.submit_button.description == "Submit (worst case $1234.56)"
    for button in (widget.submit_button, widget.recheck_button, widget.cancel_button):
        assert button.layout.width == "auto" and button.layout.min_width == "max-content"

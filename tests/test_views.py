"""Views: escaping, bounded output, terminal semantics; the widget fed by real updates."""

from __future__ import annotations

import io

from hfjobs_magic.jobs.record import MIME
from hfjobs_magic.jobs.watch import Update
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


def test_money_never_shows_a_paid_job_as_free():
    from hfjobs_magic.views.bundle import money

    assert money(0.00001) == "< $0.0001" and money(0) == "$0.0000"
    assert money(0.5) == "$0.5000" and money(12.345) == "$12.35" and money(None) == "unknown"


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

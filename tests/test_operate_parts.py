"""The pure parts of operating jobs: progress folding, metrics bookkeeping, guards, cron, and how views show them."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest

from hfjobs_magic.cell.cron import CronError, next_runs, runs_per_month
from hfjobs_magic.jobs.guards import Guards, idle_cancel_reason, notices, queue_notice, spoken
from hfjobs_magic.jobs.metrics import MetricsState, sample_of
from hfjobs_magic.jobs.progress import REPLACE, ProgressFolder, bar_of, extend, merge
from hfjobs_magic.jobs.record import JobRecord, Update
from hfjobs_magic.views.operating import metrics_html, sparkline
from hfjobs_magic.views.text import TextView

EVIL = "<img src=x onerror=alert(1)>"


def tqdm_states(total: int, desc: str = "") -> list[str]:
    prefix = f"{desc}: " if desc else ""
    return [f"{prefix}{100 * n // total:3d}%|{'#' * (10 * n // total):10}| {n}/{total} [00:01<00:02, 9.9it/s]"
            for n in range(total + 1)]


def fold_all(batches: list[list[str]]) -> list[str]:
    folder, shown = ProgressFolder(), []
    for batch in batches:
        extend(shown, folder.fold(batch))
    return shown


@pytest.mark.parametrize("line, state", [
    (" 45%|####5     | 45/100 [00:01<00:02, 40.1it/s]", "45/100"),
    ("Epoch 1: 100%|##########| 10/10 [00:00<00:00, 99it/s]", "10/10"),
    ("45/100 [00:01<00:02, 40.1it/s]", "45/100"),
    ("123it [00:01, 98.2it/s]", "123"),
    ("Downloading:  50%|#####     |", "50%"),
])
def test_progress_lines_are_recognised_by_shape(line, state):
    assert bar_of(line).state == state


@pytest.mark.parametrize("line", ["step 10/100 loss 0.3", "loss [0.5, 0.4]", "50% done", "epoch 1 [train]"])
def test_ordinary_lines_are_not_bars(line):
    assert bar_of(line) is None


def test_a_bar_as_separate_lines_or_as_returns_in_one_line_is_one_line():
    states = tqdm_states(300)
    as_lines = fold_all([["before"], *[states[i:i + 7] for i in range(0, len(states), 7)], ["after"]])
    as_returns = fold_all([["before", "\r" + "\r".join(states), "after"]])
    assert as_lines == as_returns == ["before", states[-1], "after"]


def test_a_finished_bar_stays_and_the_next_bar_gets_its_own_line():
    first, second = tqdm_states(5, "train"), tqdm_states(4, "train")
    shown = fold_all([first, [first[-1]], second])  # tqdm draws the final state again when it closes
    assert shown == [first[-1], second[-1]]
    assert fold_all([tqdm_states(3, "a"), tqdm_states(3, "b")]) == [tqdm_states(3, "a")[-1], tqdm_states(3, "b")[-1]]


def test_a_replacement_crosses_batches_and_merges_into_pending_lines():
    folder = ProgressFolder()
    first = folder.fold(["log", " 10%|#  | 1/10 [00:01<00:09, 1it/s]"])
    second = folder.fold([" 20%|## | 2/10 [00:02<00:08, 1it/s]", "next"])
    assert second[0].startswith(REPLACE) and second[1] == "next"
    assert merge(first, second) == ["log", " 20%|## | 2/10 [00:02<00:08, 1it/s]", "next"]
    record = JobRecord(id="j", namespace="a", url="u", flavor="cpu-basic", tail_lines=5)
    record.add_lines(first)
    record.add_lines(second)
    assert record.log_tail == ["log", " 20%|## | 2/10 [00:02<00:08, 1it/s]", "next"] and record.log_lines_seen == 3


def test_the_text_view_overwrites_a_bar_with_a_return_and_ends_with_the_stage():
    out = io.StringIO()
    view = TextView(out=out, progress_every=0)
    running = {"id": "j1", "stage": "RUNNING", "flavor": "cpu-basic", "url": "u", "push": []}
    folder = ProgressFolder()
    for batch in (["start"], *[[s] for s in tqdm_states(4)], ["last line"]):
        view.update(Update(running, folder.fold(batch)))
    view.update(Update(running | {"stage": "COMPLETED"}, []))  # the stage polled before the log drained
    view.update(Update(running | {"stage": "COMPLETED"}, ["really the last line"], final=True))
    text = out.getvalue()
    assert "start\n  0%|" in text and "\r 25%|" in text and "\r100%|##########| 4/4" in text
    assert text.index("really the last line") < text.index("is COMPLETED") < text.index("ended COMPLETED")
    assert text.count("is COMPLETED") == 1


def event(cpu: float = 50.0, gpu: float | None = None) -> dict:
    gpus = {"g0": {"utilization": gpu, "memory_used_bytes": 10**9, "memory_total_bytes": 24 * 10**9}}
    return {"cpu_usage_pct": cpu, "memory_used_bytes": 2 * 10**9, "memory_total_bytes": 16 * 10**9,
            "gpus": gpus if gpu is not None else {}}


def test_metrics_keep_latest_peaks_and_idle_gpu_time():
    state = MetricsState()
    for t, (cpu, gpu) in enumerate([(10, 90), (80, 1), (20, 0), (30, 2), (40, 60), (5, 0), (5, 0)]):
        state.add(event(cpu, gpu), float(t))
    found = state.as_json()
    assert found["cpu_pct"] == 5 and found["peak"]["cpu_pct"] == 80 and found["peak"]["gpu_util_pct"] == 90
    assert found["idle_gpu_s"] == 1.0 and found["idle_gpu_total_s"] == 3.0  # 1..3 idle, 4 busy, 5..6 idle
    assert found["gpu_memory_total_bytes"] == 24 * 10**9
    assert len(state.series(points=3)["cpu_pct"]) <= 3 and state.series()["cpu_pct"][-1] == 5


def test_a_job_without_a_gpu_has_no_gpu_fields():
    assert set(sample_of(event())) == {"cpu_pct", "memory_bytes", "memory_total_bytes"}
    state = MetricsState()
    state.add(event(), 0.0)
    assert "idle_gpu_s" not in state.as_json() and MetricsState().as_json() is None


def gpu_record(**changes) -> JobRecord:
    record = JobRecord(id="j1", namespace="a", url="u", flavor="t4-small", stage="RUNNING", usd_per_hour=3.6)
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def test_idle_gpu_warning_says_the_money_and_cancel_says_why():
    record = gpu_record(metrics={"gpu_util_pct": 0, "idle_gpu_s": 700, "idle_gpu_total_s": 1000})
    found = notices(record, Guards(idle_gpu_warn_s=600), gpu=True)
    assert "idle (under 5 %) for 12 minutes" in found["idle_gpu"] and "$1.00 spent" in found["idle_gpu"]
    assert notices(record, Guards(idle_gpu_warn_s=600), gpu=False) == {}
    assert idle_cancel_reason(record, 600) == "cancelled because the GPU was idle for 12 minutes (--cancel-if-idle)"
    assert idle_cancel_reason(record, 900) is None and idle_cancel_reason(record, None) is None


def test_queue_notice_after_the_threshold_only():
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    record = gpu_record(stage="SCHEDULING", created_at=created, flavor="h200x8")
    assert queue_notice(record, 300, now=created + timedelta(seconds=299)) is None
    text = queue_notice(record, 300, now=created + timedelta(minutes=12))
    assert "Waiting for hardware for 12 minutes" in text and "h200x8" in text and "%hfjob_cancel j1" in text
    assert spoken(1) == "1 second" and spoken(75) == "1 minute" and spoken(600) == "10 minutes"


def test_cron_runs_and_errors():
    start = datetime(2026, 1, 1, 12, 30, tzinfo=timezone.utc)
    assert [m.isoformat() for m in next_runs("@daily", after=start)][:2] == ["2026-01-02T00:00:00+00:00",
                                                                             "2026-01-03T00:00:00+00:00"]
    assert runs_per_month("@hourly", after=start) == 720 and runs_per_month("0 9 * * 1", after=start) in (4, 5)
    for bad in ("@nightly", "61 * * * *", "* * *"):
        with pytest.raises(CronError, match="@hourly, @daily"):
            next_runs(bad)


def test_metrics_and_sparklines_are_escaped_svg():
    assert sparkline([1.0]) == ""
    svg = sparkline([0, 50, 100], top=100)
    assert svg.startswith("<svg") and "polyline" in svg and "<script" not in svg
    html = metrics_html({"cpu_pct": 12, "memory_bytes": 10**9, "memory_total_bytes": 2 * 10**9,
                         "gpu_util_pct": 3, "gpu_memory_bytes": 1, "gpu_memory_total_bytes": 2},
                        {"cpu_pct": [1, 2, 3], EVIL: [1, 2]})
    assert "CPU</b> 12%" in html and "1.0 GB / 2.0 GB" in html and "data-metric='gpu_util_pct'" in html
    assert "<img" not in html


def test_the_widget_shows_metrics_notices_and_an_idle_cancel():
    from hfjobs_magic.views.widgets import JobWidget

    cancelled = []
    widget = JobWidget()
    record = {"id": "j1", "stage": "RUNNING", "flavor": "t4-small", "url": "u", "push": [],
              "metrics": {"cpu_pct": 5, "memory_bytes": 1, "memory_total_bytes": 2, "gpu_util_pct": 0},
              "notices": [{"kind": "idle_gpu", "text": EVIL}]}
    widget.started(record)
    widget.on_cancel(lambda: cancelled.append(True))
    widget.update(Update(record, [], series={"cpu_pct": [1, 5, 3]}))
    assert "<svg" in widget.metrics.value and "GPU</b> 0%" in widget.metrics.value
    assert "<img" not in widget.notices.value and "&lt;img" in widget.notices.value
    assert widget.idle_cancel_button.layout.display is None
    widget.idle_cancel_button.click()
    assert cancelled == [True]
    widget.update(Update(record | {"stage": "CANCELED"}, [], final=True))
    assert widget.idle_cancel_button.layout.display == "none"


def test_the_new_flags_and_their_conflicts():
    from IPython.core.error import UsageError

    from hfjobs_magic.cell.spec import build_spec, parse_line

    spec = build_spec(parse_line("--schedule '0 3 * * *' --timeout 1h"))
    assert spec.schedule == "0 3 * * *" and spec.cancel_if_idle_s is None
    assert build_spec(parse_line("--flavor t4-small --cancel-if-idle 15m")).cancel_if_idle_s == 900
    for line, said in [("--cancel-if-idle soon", "--cancel-if-idle 'soon'"),
                       ("--schedule @daily --cancel-if-idle 5m", "not followed"),
                       ("--schedule @daily --detach", "drop --detach")]:
        with pytest.raises(UsageError, match=said):
            build_spec(parse_line(line))


def test_a_schedule_cell_offers_schedule_not_submit():
    from hfjobs_magic.checkresult import CheckResult
    from hfjobs_magic.views.widgets import JobWidget

    widget = JobWidget(action="Schedule")
    widget.show_checks([CheckResult("schedule", "ok", "@daily")], worst_case="$3.00")
    assert widget.submit_button.description == "Schedule" and not widget.submit_button.disabled

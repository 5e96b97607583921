"""The local job history: exact ids, unique prefixes, and prefixes shared by several jobs."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from hfjobs_magic.jobs.history import Entry, History


def entry(job_id: str) -> Entry:
    return Entry(id=job_id, namespace="alice", url=f"http://h/jobs/alice/{job_id}", flavor="cpu-basic",
                 created=None, endpoint="http://h")


def test_exact_ids_and_unique_prefixes_find_their_job(tmp_path):
    history = History(tmp_path / "h.jsonl")
    for job_id in ("abc111", "abc222", "abd333"):
        history.append(entry(job_id))
    assert history.find("abc222").id == "abc222"
    assert history.find("abd").id == "abd333"
    assert history.find("zzz") is None


def test_a_prefix_shared_by_several_jobs_is_refused(tmp_path):
    history = History(tmp_path / "h.jsonl")
    for job_id in ("abc111", "abc222"):
        history.append(entry(job_id))
    with pytest.raises(UsageError, match="start of 2 job ids"):
        history.find("abc")


def test_unreadable_lines_are_skipped_and_no_file_means_no_jobs(tmp_path):
    history = History(tmp_path / "h.jsonl")
    assert history.entries() == []
    history.append(entry("abc111"))
    with history.path.open("a") as f:
        f.write("not json\n")
    assert [e.id for e in history.entries()] == ["abc111"]

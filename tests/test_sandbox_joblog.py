"""How job output becomes log lines: split on `\\n` only, pieces of 16 KiB, as container runtimes log."""

from __future__ import annotations

from huggingface_hub import HfApi

from hfjobs_magic.sandbox.joblog import MAX_LINE_BYTES, LineSplitter

NS = "alice"


def split(*chunks: bytes) -> list[str]:
    splitter = LineSplitter()
    return [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.flush()


def test_carriage_returns_stay_inside_their_line():
    assert split(b"10%\r20%\r30%\r\nnext\r\n") == ["10%\r20%\r30%\r", "next\r"]
    assert split(b"a\r", b"\nb") == ["a\r", "b"]  # a \r\n split across two reads is still one line


def test_lines_split_across_reads_join_up():
    assert split(b"hel", b"lo\nwor", b"ld\n", b"") == ["hello", "world"]
    assert split(b"no newline at the end") == ["no newline at the end"]
    assert split(b"\n\n") == ["", ""]


def test_an_unfinished_line_goes_out_once_16_kib_piled_up():
    splitter = LineSplitter()
    assert splitter.feed(b"y" * MAX_LINE_BYTES) == []  # exactly 16 KiB: may still end in a newline
    first = splitter.feed(b"y" * 100)
    assert first == ["y" * MAX_LINE_BYTES]  # sent before the line ends, as a runtime flushes its buffer
    assert splitter.feed(b"\n") == ["y" * 100]


def test_pieces_never_cut_a_utf8_character():
    text = "\u00e9" * 20_000  # two bytes each: 40,000 bytes
    pieces = split(text.encode() + b"\n")
    assert "".join(pieces) == text and all(len(p.encode()) <= MAX_LINE_BYTES for p in pieces)
    assert len(pieces) == 3


def test_a_job_s_unfinished_line_shows_while_it_still_runs(api: HfApi):
    code = "import sys, time\nsys.stdout.write('z' * 20000); sys.stdout.flush()\ntime.sleep(60)"
    job = api.run_job(image="python:3.12", command=["python", "-c", code], namespace=NS)
    try:
        stream = api.fetch_job_logs(job_id=job.id, namespace=NS, follow=True)
        first = next(line for line in stream if line.startswith("z"))
        stream.close()
        assert first == "z" * MAX_LINE_BYTES
        assert api.inspect_job(job_id=job.id, namespace=NS).status.stage == "RUNNING"
    finally:
        api.cancel_job(job_id=job.id, namespace=NS)

"""A job's log: lines split from raw process output, kept as ready-to-send SSE events.

Each line becomes its SSE event once, when it is captured, and never changes:
the client replays a dropped stream from the start and skips by index, so every
replay must be byte-identical. Events live in memory while the job runs (so
streams need no disk reads) and in an append-only JSON-lines file (so a finished
job's log survives a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import BinaryIO

MAX_LINE_BYTES = 16 * 1024  # longer lines, and unfinished ones, go out in pieces: Docker's and containerd's size


def utc_now_iso() -> str:
    """Now, as the Hub writes times: ISO 8601 with milliseconds and a Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def encode_events(lines: list[str], timestamp: str) -> list[bytes]:
    """SSE `data:` events for lines captured together (one timestamp per batch, for speed)."""
    tail = f', "timestamp": "{timestamp}"}}\n\n'
    # ensure_ascii keeps every event on one line whatever the job printed (\u2028, \r, ...).
    return [f'data: {{"data": {encode_basestring_ascii(line)}{tail}'.encode("ascii") for line in lines]


class LineSplitter:
    """Turns chunks of raw output into text lines the way container runtimes log them.

    Lines end at `\\n` only: a `\\r` (a progress bar redrawing itself) stays inside
    its line, as Docker and containerd keep it. A line longer than MAX_LINE_BYTES, or one
    still unfinished when that much has piled up, goes out in pieces of that size.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        parts = (self._pending + data).split(b"\n")
        rest = parts.pop()
        pieces = [p for part in parts for p in _cut(part)]
        while len(rest) > MAX_LINE_BYTES:
            head, rest = _cut_once(rest)
            pieces.append(head)
        self._pending = rest
        return [p.decode("utf-8", "replace") for p in pieces]

    def flush(self) -> list[str]:
        """The last, unterminated line, if any."""
        rest, self._pending = self._pending, b""
        return [p.decode("utf-8", "replace") for p in _cut(rest)] if rest else []


def _cut_once(data: bytes) -> tuple[bytes, bytes]:
    """Split an over-long line at MAX_LINE_BYTES, never inside a UTF-8 character."""
    at = MAX_LINE_BYTES
    while at > MAX_LINE_BYTES - 4 and (data[at] & 0xC0) == 0x80:
        at -= 1
    return data[:at], data[at:]


def _cut(line: bytes) -> list[bytes]:
    out = []
    while len(line) > MAX_LINE_BYTES:
        head, line = _cut_once(line)
        out.append(head)
    out.append(line)
    return out


class LogBook:
    """The events of one job, appended by its runner thread, read by any number of streams."""

    def __init__(self, path: Path, events: list[bytes] | None = None, closed: bool = False) -> None:
        self.path = path
        self.events: list[bytes] = events if events is not None else []
        self.closed = closed
        self._file: BinaryIO | None = None
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @classmethod
    def load(cls, path: Path) -> LogBook:
        """A finished job's log, read back from its file (a torn last line is dropped)."""
        raw = path.read_bytes() if path.exists() else b""
        lines = raw.split(b"\n")[:-1]  # the part after the last newline is empty or torn
        return cls(path, [b"data: " + line + b"\n\n" for line in lines], closed=True)

    def append(self, lines: list[str]) -> None:
        """Record lines printed now; wakes every stream waiting for more."""
        if not lines:
            return
        events = encode_events(lines, utc_now_iso())
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the job's life
        self._file.write(b"".join(e[6:-1] for e in events))  # the JSON lines, one per event
        self._file.flush()
        with self._lock:
            self.events.extend(events)
        self._wake()

    def close(self) -> None:
        """No more lines: streams end once they have sent everything."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that stream's loop is gone
                loop.call_soon_threadsafe(event.set)

    async def wait_beyond(self, count: int, timeout: float) -> None:
        """Return once there are more than `count` events, the log is closed, or `timeout` passes."""
        event = asyncio.Event()
        with self._lock:
            if len(self.events) > count or self.closed:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            with self._lock:
                self._waiters = [w for w in self._waiters if w[1] is not event]

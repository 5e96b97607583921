"""Terminal semantics for log lines: a carriage return rewrites the line, as a progress bar expects."""

from __future__ import annotations

import re

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def collapse_cr(line: str) -> str:
    """What a terminal would show for a line with `\\r` in it: the text after the last return."""
    if "\r" not in line:
        return line
    parts = [p for p in line.split("\r") if p]
    return parts[-1] if parts else ""


def strip_ansi(line: str) -> str:
    return ANSI.sub("", line)

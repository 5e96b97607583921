"""Progress bars (tqdm and the like) as one updating line, whichever way their updates arrive.

A bar's updates reach us either as `\\r` inside one log line (a runtime that splits on `\\n`)
or as a line each (the generated script ends a line at each `\\r`, so they show live). Either
way a line that continues the bar on the line before replaces it. The watcher hands such a
line on with a leading `\\r` (terminal semantics: "overwrite the line before"); replacements
inside one batch are folded here already, so a batch carries at most one, first.
"""

from __future__ import annotations

import re
from collections.abc import MutableSequence
from dataclasses import dataclass

from hfjobs_magic.views.terminal import collapse_cr, strip_ansi

REPLACE = "\r"  # a line starting with this overwrites the line handed out before it
# The shapes tqdm (and rich, enlighten, keras-like bars) print:
#   " 45%|████▌     | 45/100 [00:01<00:02, 40.1it/s]"   "45/100 [00:01<00:02, 40.1it/s]"   "123it [00:01, 98.2it/s]"
_PERCENT = re.compile(r"(?P<pct>\d{1,3}(?:\.\d+)?)%\|")
_COUNT = re.compile(r"(?P<n>\d+(?:\.\d+)?[kMGT]?)/(?P<total>\d+(?:\.\d+)?[kMGT]?)\s*\[[^\]]*<[^\]]*\]")
_UNBOUNDED = re.compile(r"(?P<n>\d+(?:\.\d+)?[kMGT]?)(?:it|B)?\s*\[\d+:\d+(?::\d+)?(?:,[^\]]*)?\]")


@dataclass(frozen=True)
class Bar:
    """What a progress line says: which bar (the text before its numbers) and how far it is."""

    prefix: str
    state: str  # "45/100", "45%" or "123"
    done: bool

    def continues(self, before: Bar) -> bool:
        """The same bar again: a later state of an unfinished bar, or the final state drawn once more."""
        return self.prefix == before.prefix and (not before.done or self.state == before.state)


def bar_of(line: str) -> Bar | None:
    """The bar a line draws, or None when it is not a progress line."""
    text = strip_ansi(line).strip()
    if (count := _COUNT.search(text)) is not None:
        start = _PERCENT.search(text)
        prefix = text[: start.start() if start and start.start() < count.start() else count.start()]
        return Bar(prefix.strip(), f"{count['n']}/{count['total']}", count["n"] == count["total"])
    if (percent := _PERCENT.search(text)) is not None:
        return Bar(text[: percent.start()].strip(), f"{percent['pct']}%", float(percent["pct"]) >= 100)
    unbounded = _UNBOUNDED.search(text)
    if unbounded is None or text[unbounded.end():].strip():  # brackets inside ordinary text are no bar
        return None
    return Bar(text[: unbounded.start()].strip(), unbounded["n"], False)


class ProgressFolder:
    """Turns log lines into display lines: `\\r` applied, a bar's later states replacing its earlier ones."""

    def __init__(self) -> None:
        self._last: Bar | None = None  # the bar on the last line handed out, if it was one

    def fold(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        for raw in lines:
            line = collapse_cr(raw)
            bar = bar_of(line) if ("%|" in line or "[" in line) else None
            if bar is not None and self._last is not None and bar.continues(self._last):
                if out:
                    out[-1] = (REPLACE if out[-1].startswith(REPLACE) else "") + line
                else:
                    out.append(REPLACE + line)
            else:
                out.append(line)
            self._last = bar
        return out


def merge(pending: list[str], batch: list[str]) -> list[str]:
    """Two runs of display lines as one, a replacement at the head of `batch` folded into `pending`."""
    if batch and pending and batch[0].startswith(REPLACE):
        marker = REPLACE if pending[-1].startswith(REPLACE) else ""
        return [*pending[:-1], marker + batch[0][len(REPLACE):], *batch[1:]]
    return pending + batch


def new_lines(lines: list[str]) -> int:
    """How many of the display lines are new ones (not replacements)."""
    return sum(1 for line in lines if not line.startswith(REPLACE))


def extend(buffer: MutableSequence[str], lines: list[str]) -> None:
    """Append display lines to a deque or list, a replacement overwriting the last line (`\\r` as a terminal)."""
    for line in lines:
        replaces = line.startswith(REPLACE)
        line = collapse_cr(line)
        if replaces and buffer:
            buffer[-1] = line
        else:
            buffer.append(line)

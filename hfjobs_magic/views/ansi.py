"""ANSI colours to escaped HTML, so a job's coloured output keeps its colours in the log pane."""

from __future__ import annotations

import html
import re

SGR = re.compile(r"\x1b\[([0-9;]*)m")
OTHER_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-ln-z]")
COLOURS = ["#000", "#c00", "#0a0", "#a60", "#00c", "#a0a", "#0aa", "#aaa"]
BRIGHT = ["#555", "#f55", "#5f5", "#ff5", "#55f", "#f5f", "#5ff", "#fff"]


def _style(codes: list[int], state: dict[str, str]) -> None:
    for code in codes or [0]:
        if code == 0:
            state.clear()
        elif code == 1:
            state["font-weight"] = "bold"
        elif 30 <= code <= 37:
            state["color"] = COLOURS[code - 30]
        elif 90 <= code <= 97:
            state["color"] = BRIGHT[code - 90]
        elif code == 39:
            state.pop("color", None)


def to_html(line: str) -> str:
    """One line of terminal output as HTML: text escaped, SGR colours as spans, other escapes dropped."""
    line = OTHER_ESCAPES.sub("", line)
    out, state, pos = [], {}, 0
    for match in SGR.finditer(line):
        out.append(_span(line[pos : match.start()], state))
        _style([int(c) for c in match.group(1).split(";") if c.isdigit()], state)
        pos = match.end()
    out.append(_span(line[pos:], state))
    return "".join(out)


def _span(text: str, state: dict[str, str]) -> str:
    if not text:
        return ""
    escaped = html.escape(text)
    if not state:
        return escaped
    style = ";".join(f"{k}:{v}" for k, v in state.items())
    return f'<span style="{style}">{escaped}</span>'

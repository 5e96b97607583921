"""Mask secret values in job output before a line goes anywhere.

A job can print a secret whole, sliced or wrapped; any run of 8 or more
characters taken from a secret value is replaced, so a printed token prefix
or suffix does not leak either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MIN_PIECE = 8
MASK = "***"
# What a Hugging Face token looks like; a literal one is never echoed back, wherever we found it.
TOKEN_LITERAL = re.compile(r"hf_[A-Za-z0-9]{30,}")


def hide_token_literals(text: str) -> str:
    """`hf_` + a long run of letters and digits -> `hf_***`, for every message we print or save."""
    return TOKEN_LITERAL.sub("hf_" + MASK, text)


class SecretMasker:
    """Replaces every 8+ character piece of the given secret values with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if s and len(s) >= MIN_PIECE}, key=len, reverse=True)
        self._values = values
        grams = {v[i : i + MIN_PIECE] for v in values for i in range(len(v) - MIN_PIECE + 1)}
        alternation = "|".join(re.escape(g) for g in sorted(grams))
        # A lookahead finds overlapping pieces; each hit marks MIN_PIECE characters.
        self._probe = re.compile(f"(?=({alternation}))") if grams else None

    def __bool__(self) -> bool:
        return self._probe is not None

    def mask(self, text: str) -> str:
        if self._probe is None or not self._probe.search(text):
            return text
        hidden = bytearray(len(text))
        for match in self._probe.finditer(text):
            start = match.start()
            hidden[start : start + MIN_PIECE] = b"\x01" * MIN_PIECE
        return _replace_runs(text, hidden)

    def mask_lines(self, lines: list[str]) -> list[str]:
        """Mask a batch; one search over the joined batch skips clean batches quickly."""
        if self._probe is None or not self._probe.search("\n".join(lines)):
            return lines
        return [self.mask(line) for line in lines]


def _replace_runs(text: str, hidden: bytearray) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if hidden[i]:
            while i < n and hidden[i]:
                i += 1
            out.append(MASK)
        else:
            j = i
            while j < n and not hidden[j]:
                j += 1
            out.append(text[i:j])
            i = j
    return "".join(out)

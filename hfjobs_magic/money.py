"""How an amount of dollars reads: one way in the checklist, the live views, the record and `hfjob run`.

The lab card (labextension/src/renderer.ts `money`) says it the same way. A cost too small to
show in four decimals reads `< $0.0001`, never `$0.0000`: a paid job never looks free.
"""

from __future__ import annotations


def usd(value: float | None) -> str:
    """`unknown`, `$0.00`, `< $0.0001`, four decimals under a cent (`$0.0042`), else cents (`$0.75`)."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0.00"
    if 0 < value < 0.0001:
        return "< $0.0001"
    return f"${value:.4f}" if 0 < value < 0.01 else f"${value:.2f}"

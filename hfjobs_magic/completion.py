"""Tab completion inside `%%hfjob` lines (flag names, flavor names), through IPython's completer."""

from __future__ import annotations

from typing import Any


def complete_hfjob(_shell: Any, event: Any) -> list[str]:
    """Flags after a space, flavor names after --flavor; IPython filters by the typed prefix."""
    from hfjobs_magic.cell.flags import REPO_TYPES, known_flags
    from hfjobs_magic.remote.hardware import FLAVORS

    words = event.line.split()
    typed = event.symbol
    previous = words[-2] if typed and len(words) >= 2 else (words[-1] if words else "")
    if previous == "--flavor":
        return [f.name for f in FLAVORS]
    if previous == "--repo-type":
        return list(REPO_TYPES)
    return [flag for flag in known_flags() if flag.startswith(typed or "-")]


def install_completer(shell: Any) -> None:
    for key in ("%%hfjob", "%hfjob"):
        shell.set_hook("complete_command", complete_hfjob, str_key=key)

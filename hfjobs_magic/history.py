"""The local job history: what `%hfjob_ps` and `%hfjob_attach` know after a kernel restart.

One JSON line per job: id, namespace, url, flavor, created, notebook, cell hash
and endpoint. Never a token, never the script.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

HISTORY_ENV = "HFJOB_HISTORY"


def default_path() -> Path:
    if env := os.environ.get(HISTORY_ENV):
        return Path(env)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "hfjobs_magic" / "history.jsonl"


@dataclass(frozen=True)
class Entry:
    id: str
    namespace: str
    url: str
    flavor: str
    created: str | None
    endpoint: str
    notebook: str | None = None
    cell: str | None = None


class History:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def append(self, entry: Entry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(entry)) + "\n")

    def entries(self) -> list[Entry]:
        """Every entry, newest last; unreadable lines are skipped rather than fatal."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(Entry(**json.loads(line)))
            except (ValueError, TypeError):
                continue
        return out

    def find(self, job_id: str) -> Entry | None:
        """The newest entry whose id is `job_id` or starts with it."""
        matches = [e for e in self.entries() if e.id == job_id or e.id.startswith(job_id)]
        return matches[-1] if matches else None

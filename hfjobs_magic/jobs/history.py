"""The local job history: what `%hfjob_ps` and `%hfjob_attach` know after a kernel restart.

One JSON line per job: id, namespace, url, flavor, created, notebook, cell hash
and endpoint. Never a token, never the script.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

HISTORY_ENV = "HFJOB_HISTORY"
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # what a job id (or a prefix of one) can be: safe in a URL and a file name


def default_path() -> Path:
    if env := os.environ.get(HISTORY_ENV):
        return Path(env)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "hfjobs_magic" / "history.jsonl"


@dataclass(frozen=True)
class Entry:
    """One job in the local history: enough to find, attach to and list it; never a secret."""

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
        """The entry whose id is `job_id`, or the one job whose id starts with it.

        A prefix shared by several jobs is an error naming them: guessing could cancel the wrong job.
        """
        entries = self.entries()
        exact = [e for e in entries if e.id == job_id]
        if exact:
            return exact[-1]
        ids = list(dict.fromkeys(e.id for e in entries if e.id.startswith(job_id)))
        if len(ids) > 1:
            from IPython.core.error import UsageError

            raise UsageError(f"{job_id} is the start of {len(ids)} job ids ({', '.join(ids[-5:])}); "
                             "give more of the id")
        return next((e for e in reversed(entries) if e.id.startswith(job_id)), None) if ids else None

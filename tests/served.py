"""`hfjob sandbox` as a user starts it: a real process whose printed lines a real shell exports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HFJOB = Path(sys.executable).parent / "hfjob"
START_LINES = 4  # HF_ENDPOINT=..., HF_TOKEN=..., then two comment lines naming the other tokens


@dataclass
class Served:
    proc: subprocess.Popen
    lines: list[str]  # what it printed on stdout once serving, newlines stripped
    exported: dict[str, str]  # HF_ENDPOINT and HF_TOKEN as bash sees them after `eval` of those lines
    stderr_path: Path

    @property
    def endpoint(self) -> str:
        return self.exported["HF_ENDPOINT"]

    @property
    def token(self) -> str:
        return self.exported["HF_TOKEN"]

    def comment(self, word: str) -> str:
        """The last word of the printed comment line that mentions `word` (a token)."""
        return next(line for line in self.lines if line.startswith("# ") and word in line).split()[-1]

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; its exit code."""
        return _stop(self.proc)


def _stop(proc: subprocess.Popen) -> int:
    """SIGINT, then SIGKILL if it has not stopped within 30 s; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def exported(text: str) -> dict[str, str]:
    """Run the printed text through bash (`eval`, then `export`), as a user pasting it would."""
    script = 'eval "$1" && export HF_ENDPOINT HF_TOKEN && env -0'
    done = subprocess.run(["bash", "-c", script, "_", text], env={"PATH": os.defpath}, capture_output=True,
                          timeout=30, check=True)
    pairs = (item.decode().partition("=") for item in done.stdout.split(b"\0") if item)
    return {name: value for name, _, value in pairs if name in ("HF_ENDPOINT", "HF_TOKEN")}


@contextmanager
def served(*flags: str, stderr_path: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Start `hfjob sandbox FLAGS`, wait for its lines, yield them; stop it (SIGINT, then SIGKILL) after."""
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([str(HFJOB), "sandbox", *flags], stdout=subprocess.PIPE, stderr=stderr, text=True,
                                env=env if env is not None else dict(os.environ))
    try:
        lines = [proc.stdout.readline().rstrip("\n") for _ in range(START_LINES)]  # type: ignore[union-attr]
        assert all(lines), f"hfjob sandbox printed {lines}; stderr: {stderr_path.read_text()}"
        yield Served(proc, lines, exported("\n".join(lines)), stderr_path)
    finally:
        _stop(proc)
        proc.stdout.close()  # type: ignore[union-attr]

"""A repo's named refs: branches, tags and pull request refs (`refs/pr/N`), as the Hub names them.

Kept in `refs.json` next to `commits.jsonl`. A repo written before refs existed has no such
file: its one branch, `main`, is then the last commit of `commits.jsonl`, which is what it
was. Knows nothing about HTTP: refusals are `repos.StoreError`s with the Hub's own words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path

MAIN = "main"
_PR = re.compile(r"refs/pr/([1-9][0-9]*)")
# What git accepts in a ref name, less its rarer rules: no spaces, `..`, `~^:?*[\`, control chars.
_BAD_NAME = re.compile(r"[\x00-\x20~^:?*\[\\\x7f]|\.\.|@\{|^[/.]|[/.]$|//|\.lock$")


class RefError(Exception):
    """A ref refusal; `status` is how the Hub answers it."""

    status = 400


class RefMissing(RefError):
    status = 404


class RefExists(RefError):
    status = 409


class RefProtected(RefError):
    status = 403


def check_name(name: str, kind: str) -> str:
    if not name or _BAD_NAME.search(name) or name.startswith("refs/"):
        raise RefError(f"Invalid reference for a {kind}: {name}")
    return name


def pr_number(revision: str) -> int | None:
    """N for `refs/pr/N`, None for anything else."""
    match = _PR.fullmatch(revision)
    return int(match.group(1)) if match else None


@dataclass
class Refs:
    """Ref name -> commit oid, by kind; `save` writes them all at once."""

    path: Path
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, last_oid: str | None) -> Refs:
        if not path.exists():
            return cls(path, branches={MAIN: last_oid} if last_oid else {})
        return cls.load_bytes(path, path.read_bytes())

    @classmethod
    def load_bytes(cls, path: Path, data: bytes) -> Refs:
        raw = json.loads(data)
        pulls = {int(num): oid for num, oid in raw.get("pulls", {}).items()}
        return cls(path, dict(raw.get("branches", {})), dict(raw.get("tags", {})), pulls)

    def forget_unknown(self, known: Container[str], last_oid: str | None) -> None:
        """Drop refs to commits that are not there (a crash between a ref write and its commit line);
        `main` then falls back to the last commit, as before refs existed."""
        self.branches = {name: oid for name, oid in self.branches.items() if oid in known}
        self.tags = {name: oid for name, oid in self.tags.items() if oid in known}
        self.pulls = {num: oid for num, oid in self.pulls.items() if oid in known}
        if MAIN not in self.branches and last_oid:
            self.branches[MAIN] = last_oid

    def to_json(self) -> bytes:
        pulls = {str(num): oid for num, oid in self.pulls.items()}
        return json.dumps({"branches": self.branches, "tags": self.tags, "pulls": pulls}, indent=1).encode()

    def lookup(self, revision: str) -> str | None:
        """The oid a ref name points at: a branch (`x`, `refs/heads/x`), tag (`x`, `refs/tags/x`) or PR."""
        if (num := pr_number(revision)) is not None:
            return self.pulls.get(num)
        if revision.startswith("refs/heads/"):
            return self.branches.get(revision.removeprefix("refs/heads/"))
        if revision.startswith("refs/tags/"):
            return self.tags.get(revision.removeprefix("refs/tags/"))
        return self.branches.get(revision) or self.tags.get(revision)

    def branch_of(self, revision: str) -> str | None:
        """The branch (or `refs/pr/N`) a commit to `revision` moves; None when it names no branch."""
        if (num := pr_number(revision)) is not None:
            return revision if num in self.pulls else None
        name = revision.removeprefix("refs/heads/")
        return name if name in self.branches else None

    def tip(self, branch: str) -> str:
        """The oid a branch name or `refs/pr/N` (from `branch_of`) points at."""
        num = pr_number(branch)
        return self.pulls[num] if num is not None else self.branches[branch]

    def move(self, branch: str, oid: str) -> None:
        num = pr_number(branch)
        if num is not None:
            self.pulls[num] = oid
        else:
            self.branches[branch] = oid

    def add_branch(self, name: str, oid: str) -> None:
        check_name(name, "branch")
        if name in self.branches:
            raise RefExists(f"Reference refs/heads/{name} already exists")
        self.branches[name] = oid

    def delete_branch(self, name: str) -> None:
        if name == MAIN:
            raise RefProtected(f"Cannot delete refs/heads/{MAIN}: it is the default branch")
        if self.branches.pop(name, None) is None:
            raise RefMissing(f"Invalid rev id: {name}")

    def add_tag(self, name: str, oid: str) -> None:
        check_name(name, "tag")
        if name in self.tags:
            raise RefExists(f"Reference refs/tags/{name} already exists")
        self.tags[name] = oid

    def delete_tag(self, name: str) -> None:
        if self.tags.pop(name.removeprefix("refs/tags/"), None) is None:
            raise RefMissing(f"Invalid rev id: {name}")

"""A repo's discussions and pull requests: enough of the Hub's to open, list, read and merge PRs.

Kept in `discussions.json` in the repo's folder (none until the first one opens). A pull request
is a discussion whose `refs/pr/N` ref (in `refs`) starts at its base branch's tip; commits with
`create_pr` open one, later commits to `refs/pr/N` add to it. Numbers are shared by both kinds.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from hfjobs_magic.sandbox.refs import MAIN

if TYPE_CHECKING:
    from hfjobs_magic.sandbox.repos import Blob

STATUSES = ("open", "closed", "merged", "draft")


class Discussions:
    """Every discussion of one repo, oldest first; `lock` makes numbering and opening one step."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "discussions.json"
        self.lock = threading.Lock()
        self.items: list[dict] = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else []

    def next_number(self, pulls: dict[int, str]) -> int:
        return max([d["num"] for d in self.items] + list(pulls), default=0) + 1

    def open(self, num: int, *, title: str, author: str, date: str, pull_request: bool, base: str = MAIN,
             start: str | None = None, description: str = "") -> dict:
        """A new discussion; a PR's `start` is the base commit its `refs/pr/N` began at (merges diff from it)."""
        item = {"num": num, "title": title, "author": author, "createdAt": date, "status": "open",
                "isPullRequest": pull_request, "base": f"refs/heads/{base.removeprefix('refs/heads/')}",
                "startOid": start, "events": []}
        if description:
            item["events"].append(_event("comment", author, date, {"raw": description}))
        self.items.append(item)
        self._save()
        return item

    def get(self, num: int) -> dict | None:
        return next((d for d in self.items if d["num"] == num), None)

    def add_commit(self, num: int, *, oid: str, title: str, author: str, date: str) -> None:
        if (item := self.get(num)) is not None:
            item["events"].append(_event("commit", author, date, {"subject": title, "oid": oid}))
            self._save()

    def set_status(self, num: int, status: str, author: str, date: str, merge_oid: str | None = None) -> dict:
        item = self.get(num)
        assert item is not None and status in STATUSES
        item["status"] = status
        if merge_oid:
            item["mergeCommitId"] = merge_oid
        return self._log(item, _event("status-change", author, date, {"status": status}))

    def comment(self, num: int, text: str, author: str, date: str) -> dict:
        item = self.get(num)
        assert item is not None
        return self._log(item, _event("comment", author, date, {"raw": text}))

    def rename(self, num: int, title: str, author: str, date: str) -> dict:
        item = self.get(num)
        assert item is not None
        event = _event("title-change", author, date, {"from": item["title"], "to": title})
        item["title"] = title
        return self._log(item, event)

    def _log(self, item: dict, event: dict) -> dict:
        item["events"].append(event)
        self._save()
        return event

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.items, indent=1), encoding="utf-8")
        tmp.replace(self.path)


class MergeConflict(Exception):
    """The base branch changed some of the PR's files since the PR began."""


def merged_tree(start: dict[str, Blob], tip: dict[str, Blob], base: dict[str, Blob]) -> dict[str, Blob]:
    """`base` with the PR's changes (from `start` to `tip`) applied; MergeConflict where both sides differ."""
    changed = {p for p in start.keys() | tip.keys() if start.get(p) != tip.get(p)}
    conflicts = sorted(p for p in changed if base.get(p) not in (start.get(p), tip.get(p)))
    if conflicts:
        raise MergeConflict(f"This pull request has conflicts with its base: {', '.join(conflicts)}")
    tree = dict(base)
    for path in changed:
        if path in tip:
            tree[path] = tip[path]
        else:
            tree.pop(path, None)
    return tree


def _event(kind: str, author: str, date: str, data: dict) -> dict:
    if kind == "comment":
        data = {"edited": False, "hidden": False, "latest": data}
    return {"id": f"{kind}-{uuid.uuid4().hex[:12]}", "type": kind, "createdAt": date, "author": {"name": author},
            "data": data}


def summary(item: dict, repo_type: str, repo_id: str) -> dict:
    """One item of `GET .../discussions`, as `Discussion` reads it."""
    return {"num": item["num"], "title": item["title"], "author": {"name": item["author"]},
            "createdAt": item["createdAt"], "status": item["status"], "isPullRequest": item["isPullRequest"],
            "repo": {"name": repo_id, "type": repo_type}, "pinned": False}


def details(item: dict, repo_type: str, repo_id: str) -> dict:
    """The body of `GET .../discussions/{num}`, as `DiscussionWithDetails` reads it."""
    body = {**summary(item, repo_type, repo_id), "events": item["events"], "filesWithConflicts": []}
    if item["isPullRequest"]:
        body["changes"] = {"base": item["base"], "mergeCommitId": item.get("mergeCommitId")}
    return body

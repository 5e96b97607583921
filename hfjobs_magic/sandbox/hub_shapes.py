"""The Hub's JSON shapes, built from store objects, and the NDJSON commit body, parsed.

Pure functions (no requests, no app state), so the endpoints in `hub_routes`
stay a few lines each. Field names follow what huggingface_hub 2.4 reads:
`ModelInfo`/`DatasetInfo`/`SpaceInfo`, `RepoFile`/`RepoFolder`,
`GitCommitInfo`, `_prepare_commit_payload`.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import html
import json
from dataclasses import dataclass

import yaml
from huggingface_hub.repocard import REGEX_YAML_BLOCK

from hfjobs_magic.sandbox.repos import (
    Blob,
    Commit,
    Delete,
    Operation,
    Put,
    PutLfs,
    Repo,
    parent_dirs,
    tree_oid,
)


class BadBody(ValueError):
    """The request body is not what the Hub accepts; `status` says how to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# -- repo info --------------------------------------------------------------------------


def front_matter(text: str) -> dict | None:
    """The YAML metadata block at the top of a README, None without one; ValueError if invalid."""
    match = REGEX_YAML_BLOCK.search(text)
    if match is None:
        return None
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError as err:
        raise ValueError(f"Invalid YAML in the metadata block: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("The metadata block must be a YAML mapping (key: value)")
    return data


def card_problems(text: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) of a README's metadata, for the few rules the Hub's validator is known by."""
    try:
        data = front_matter(text)
    except ValueError as err:
        return [str(err)], []
    if not data:
        return [], ["Empty or missing yaml metadata in repo card (https://huggingface.co/docs/hub/model-cards)"]
    if "model-index" in data and not isinstance(data["model-index"], list):
        return ['"model-index" must be an array'], []
    return [], []


def ignored(gitignore: str, path: str) -> bool:
    """Whether a `.gitignore` leaves `path` out, for its common rules (globs, `dir/`, `/anchored`, `!`)."""
    result = False
    for line in gitignore.splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if _gitignore_match(pattern, path):
            result = not negate
    return result


def _gitignore_match(pattern: str, path: str) -> bool:
    anchored = "/" in pattern.rstrip("/")
    pattern = pattern.strip("/")
    candidates = [path, *parent_dirs(path)] if anchored else [*path.split("/")]
    return any(fnmatch.fnmatchcase(c, pattern) for c in candidates) or (
        anchored and fnmatch.fnmatchcase(path, pattern + "/*")
    )


def card_data(repo: Repo, commit: Commit) -> dict | None:
    blob = commit.tree.get("README.md")
    if blob is None:
        return None
    try:
        return front_matter(repo.read(blob).decode("utf-8", errors="replace"))
    except ValueError:
        return None


def _sibling(path: str, blob: Blob, blobs: bool) -> dict:
    entry: dict = {"rfilename": path}
    if blobs:
        entry.update(size=blob.size, blobId=blob.oid)
        if blob.lfs:
            entry["lfs"] = {"size": blob.size, "sha256": blob.sha256, "pointerSize": blob.pointer_size}
    return entry


def repo_info(repo: Repo, commit: Commit, *, blobs: bool = False, expand: list[str] | None = None) -> dict:
    """The body of `GET /api/{type}s/{repo_id}[/revision/{rev}]`; with `expand`, only those keys."""
    siblings = [_sibling(path, blob, blobs) for path, blob in sorted(commit.tree.items())]
    body: dict = {
        "_id": f"sandbox-{repo.repo_type}-{repo.repo_id}",
        "id": repo.repo_id,
        "author": repo.namespace,
        "sha": commit.oid,
        "lastModified": repo.head.date,
        "createdAt": repo.meta.get("createdAt"),
        "private": repo.private,
        "gated": repo.meta.get("gated", False),
        "disabled": False,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": sum(blob.size for blob in commit.tree.values()),
    }
    if repo.repo_type != "space":
        body["downloads"] = 0
    if (card := card_data(repo, commit)) is not None:
        body["cardData"] = card
    if repo.repo_type == "space":
        body["sdk"] = repo.meta.get("sdk")
        body["runtime"] = {"stage": "NO_APP_FILE", "hardware": {"current": None, "requested": "cpu-basic"}}
    if expand:
        body = {key: value for key, value in body.items() if key in ("_id", "id", *expand)}
    return body


# -- trees, paths and commits ---------------------------------------------------------------


def file_entry(path: str, blob: Blob) -> dict:
    entry: dict = {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}
    if blob.lfs:
        entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": blob.pointer_size}
    return entry


def folder_entry(tree: dict[str, Blob], path: str) -> dict:
    prefix = path + "/"
    oid = tree_oid((p, b.oid) for p, b in tree.items() if p.startswith(prefix))
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


def tree_listing(tree: dict[str, Blob], base: str, recursive: bool) -> list[dict] | None:
    """Entries under folder `base` ("" = root), folders first; None when `base` is no folder."""
    prefix = f"{base}/" if base else ""
    files = sorted(p for p in tree if p.startswith(prefix))
    if base and not files:
        return None
    folders = sorted({d for p in files for d in parent_dirs(p) if d.startswith(prefix)})
    if not recursive:
        files = [p for p in files if "/" not in p[len(prefix) :]]
        folders = [d for d in folders if "/" not in d[len(prefix) :]]
    entries = [folder_entry(tree, d) for d in folders] + [file_entry(p, tree[p]) for p in files]
    return sorted(entries, key=lambda e: e["path"]) if recursive else entries


def path_entry(tree: dict[str, Blob], path: str) -> dict | None:
    """One `paths-info` entry: a file, a folder, or None when nothing is there."""
    path = path.strip("/")
    if path in tree:
        return file_entry(path, tree[path])
    if path and any(p.startswith(path + "/") for p in tree):
        return folder_entry(tree, path)
    return None


def _changed_paths(commit: Commit, parent: Commit | None) -> set[str]:
    """Files a commit touched, plus every folder above them."""
    before = parent.tree if parent else {}
    touched = {p for p, b in commit.tree.items() if before.get(p) != b} | (set(before) - set(commit.tree))
    return touched | {d for p in touched for d in parent_dirs(p)}


def add_last_commits(repo: Repo, commit: Commit, entries: list[dict]) -> list[dict]:
    """Add `lastCommit` (the newest commit that changed each path), as `expand=True` asks."""
    pending = {e["path"] for e in entries}
    found: dict[str, Commit] = {}
    for current in repo.history(commit):
        parent = repo.resolve(current.parent) if current.parent else None
        hits = pending & _changed_paths(current, parent)
        found.update(dict.fromkeys(hits, current))
        pending -= hits
        if not pending:
            break
    for entry in entries:
        if (last := found.get(entry["path"])) is not None:
            entry["lastCommit"] = {"id": last.oid, "title": last.title, "date": last.date}
    return entries


def commit_entry(commit: Commit, formatted: bool = False) -> dict:
    """One item of `GET .../commits/{rev}`, as `GitCommitInfo` reads it."""
    entry = {
        "id": commit.oid,
        "title": commit.title,
        "message": commit.message,
        "authors": [{"user": commit.author, "avatar": None}],
        "date": commit.date,
    }
    if formatted:
        entry["formatted"] = {"title": html.escape(commit.title), "message": html.escape(commit.message)}
    return entry


# -- the NDJSON commit body -----------------------------------------------------------------


@dataclass
class CommitRequest:
    summary: str
    description: str
    parent: str | None
    operations: list[Operation]


def parse_commit(body: bytes, max_file_bytes: int) -> CommitRequest:
    """Parse and check every line before anything is written; BadBody says what is wrong."""
    header: dict | None = None
    ops: list[Operation] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        key, value = _ndjson_item(line, number)
        if key == "header":
            if header is not None or ops:
                raise BadBody(f"Line {number}: the header must come once, on the first line")
            header = value
        else:
            ops.append(_operation(key, value, number, max_file_bytes))
    if header is None:
        raise BadBody("Missing commit header (a first line with key 'header')")
    return _commit_request(header, ops)


def _ndjson_item(line: bytes, number: int) -> tuple[str, dict]:
    try:
        item = json.loads(line)
    except ValueError as err:
        raise BadBody(f"Malformed NDJSON on line {number}: {err}") from err
    if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
        raise BadBody(f"Line {number}: expected an object with 'key' and an object 'value'")
    return str(item.get("key")), item["value"]


def _commit_request(header: dict, ops: list[Operation]) -> CommitRequest:
    summary = header.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise BadBody("The commit header needs a non-empty 'summary'")
    parent = header.get("parentCommit")
    if parent is not None and not isinstance(parent, str):
        raise BadBody("'parentCommit' must be a commit id")
    return CommitRequest(summary, str(header.get("description") or ""), parent, ops)


def _operation(key: str, value: dict, number: int, max_file_bytes: int) -> Operation:
    path = value.get("path")
    if not isinstance(path, str):
        raise BadBody(f"Line {number}: '{key}' needs a string 'path'")
    if key == "file":
        return Put(path, _content(value, path, max_file_bytes))
    if key == "deletedFile":
        return Delete(path)
    if key == "deletedFolder":
        return Delete(path.rstrip("/"), folder=True)
    if key == "lfsFile":
        return _lfs_operation(value, path, number)
    raise BadBody(f"Line {number}: unknown operation key '{key}'")


def _lfs_operation(value: dict, path: str, number: int) -> PutLfs:
    """An LFS file: its content went up through the batch API before, the commit names its sha256."""
    oid, size = value.get("oid"), value.get("size")
    if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str):
        raise BadBody(f"Line {number}: 'lfsFile' needs algo 'sha256' and a string 'oid'")
    if size is not None and not isinstance(size, int):
        raise BadBody(f"Line {number}: 'lfsFile' size must be an integer")
    return PutLfs(path, oid, size)


def _content(value: dict, path: str, max_file_bytes: int) -> bytes:
    content, encoding = value.get("content"), str(value.get("encoding", "utf-8")).lower()
    if not isinstance(content, str):
        raise BadBody(f"File '{path}': 'content' must be a string")
    if encoding == "base64":
        if len(content) // 4 * 3 > max_file_bytes + 2:
            raise too_large(path, len(content) // 4 * 3, max_file_bytes)
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as err:
            raise BadBody(f"File '{path}': invalid base64 content ({err})") from err
    elif encoding in ("utf-8", "utf8"):
        data = content.encode("utf-8")
    else:
        raise BadBody(f"File '{path}': unknown encoding '{encoding}' (use base64)")
    if len(data) > max_file_bytes:
        raise too_large(path, len(data), max_file_bytes)
    return data


def too_large(path: str, size: int, limit: int) -> BadBody:
    return BadBody(f"File '{path}' is {size} bytes, over the sandbox's limit of {limit} bytes per file", 413)

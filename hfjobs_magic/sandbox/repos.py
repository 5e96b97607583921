"""On-disk repos with a real, append-only commit history.

One folder per repo, `root/{type}s/{namespace}/{name}/`, holding `meta.json`
(visibility, creation date), `objects/` (file contents addressed by their git
blob sha1, so the oids the client computes match ours), `lfs/` (LFS contents
by sha256) and `commits.jsonl` (one commit per line, each with the full tree,
so any revision reads in O(1)). Files are written through a temp file and a
rename; a commit becomes visible with the one appended line.
Everything the sandbox knows lives on disk, so a restart on the same data dir
finds every repo again. Knows nothing about HTTP: errors are the exceptions
below, which the routes turn into the Hub's status codes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TypeVar

from hfjobs_magic.sandbox.discussions import Discussions
from hfjobs_magic.sandbox.refs import MAIN, Refs

REPO_TYPES = ("model", "dataset", "space")
BRANCH_ALIASES = (MAIN, f"refs/heads/{MAIN}")
T = TypeVar("T")
FORBIDDEN_SEGMENTS = ("", ".", "..", ".git")
_HEX = re.compile(r"[0-9a-f]{7,40}")

# What the Hub puts in every new repo's first commit.
_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.gz *.h5 *.joblib *.msgpack *.npy *.npz *.onnx *.parquet *.pickle *.pkl"
    " *.pt *.pth *.safetensors *.tar *.tflite *.zip *.zst"
)
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _LFS_PATTERNS.split()).encode()


class StoreError(Exception):
    """Base of the store's refusals; the message is meant for the client."""


class RepoExists(StoreError):
    pass


class BadPath(StoreError):
    pass


class EntryMissing(StoreError):
    pass


class ParentMismatch(StoreError):
    pass


PARENT_MISMATCH = "The branch was updated since you opened this page. Please refresh and try again."


class MissingObject(StoreError):
    """An LFS file was committed before its content was uploaded."""


@dataclass(frozen=True)
class Blob:
    oid: str  # git blob sha1 (of the pointer file for LFS), what the Hub calls a file's oid
    size: int
    sha256: str
    lfs: bool = False  # content stored under `lfs/` by sha256, as git-lfs does

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    date: str  # ISO 8601 with milliseconds and a Z, as the Hub writes dates
    tree: dict[str, Blob] = field(repr=False)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Commit:
        raw = json.loads(line)
        raw["tree"] = {path: Blob(**blob) for path, blob in raw["tree"].items()}
        return cls(**raw)


@dataclass(frozen=True)
class Put:
    path: str
    data: bytes


@dataclass(frozen=True)
class PutLfs:
    """Add a file whose content was uploaded beforehand through the LFS batch protocol."""

    path: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class Delete:
    path: str
    folder: bool = False


Operation = Put | PutLfs | Delete


def git_blob_oid(data: bytes) -> str:
    """The sha1 git (and the client's `_local_oid`) gives this content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The pointer file git keeps in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def tree_oid(entries: Iterable[tuple[str, str]]) -> str:
    """A stable id for a set of (path, oid) pairs: changes whenever any file under it does."""
    digest = hashlib.sha1(b"tree\0")
    for path, oid in sorted(entries):
        digest.update(f"{path}\0{oid}\n".encode())
    return digest.hexdigest()


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def check_path(path: str) -> str:
    """A repo path must be relative and plain: no `/` start, no `..`, `.`, `.git` or empty segment."""
    if not isinstance(path, str) or not path:
        raise BadPath("Invalid path: a path must be a non-empty string")
    if path.startswith("/") or "\\" in path or "\0" in path or re.match(r"^[A-Za-z]:", path):
        raise BadPath(f"Invalid path '{path}': absolute paths are not allowed")
    bad = [seg for seg in path.split("/") if seg in FORBIDDEN_SEGMENTS]
    if bad:
        raise BadPath(f"Invalid path '{path}': segment '{bad[0]}' is not allowed")
    return path


def _write_atomic(target: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _append_line(path: Path, line: bytes) -> None:
    """Append a whole line or nothing: a write that fails half way (disk full) is cut off again,
    so the next commit does not land on the end of a torn line."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            rest = memoryview(line)
            while rest:
                rest = rest[os.write(fd, rest):]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def apply_operations(tree: dict[str, Blob], ops: list[tuple[Operation, Blob | None]]) -> dict[str, Blob]:
    """The tree after `ops`, in order; a delete of something absent is an error, as on the Hub."""
    new = dict(tree)
    for op, blob in ops:
        if isinstance(op, Delete):
            _delete(new, op)
            continue
        assert blob is not None
        if any(p.startswith(op.path + "/") for p in new):
            raise BadPath(f"Invalid path '{op.path}': a folder with this name exists")
        if clash := next((d for d in parent_dirs(op.path) if d in new), None):
            raise BadPath(f"Invalid path '{op.path}': '{clash}' is a file")
        new[op.path] = blob
    return new


def _delete(tree: dict[str, Blob], op: Delete) -> None:
    """A file, or a folder's files; a plain path naming a folder deletes the folder, as on the Hub."""
    if not op.folder and op.path not in tree and any(p.startswith(op.path + "/") for p in tree):
        op = Delete(op.path, folder=True)
    if not op.folder:
        if tree.pop(op.path, None) is None:
            raise EntryMissing(f"A file with this name doesn't exist: '{op.path}'")
        return
    prefix = op.path.rstrip("/") + "/"
    doomed = [p for p in tree if p.startswith(prefix)]
    if not doomed:
        raise EntryMissing(f"A folder with this name doesn't exist: '{op.path}'")
    for path in doomed:
        del tree[path]


class Repo:
    """One repo: its metadata, its commits (oldest first), its `objects/` and `lfs/` folders."""

    def __init__(self, folder: Path, repo_type: str, repo_id: str, meta: dict, commits: list[Commit]) -> None:
        self.folder, self.repo_type, self.repo_id = folder, repo_type, repo_id
        self.meta = meta
        self.commits = commits
        self._by_oid = {c.oid: c for c in commits}
        self.refs = Refs.load(folder / "refs.json", commits[-1].oid if commits else None)
        self.refs.forget_unknown(self._by_oid, commits[-1].oid if commits else None)
        self.discussions = Discussions(folder)
        self.lock = threading.Lock()  # serializes commits and ref changes, so none is lost to a race

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def private(self) -> bool:
        return bool(self.meta.get("private"))

    @property
    def head(self) -> Commit:
        """The tip of `main`."""
        return self._by_oid[self.refs.branches[MAIN]]

    def resolve(self, revision: str) -> Commit | None:
        """The commit a branch, tag, `refs/pr/N`, full oid or oid prefix (>= 7 hex) points at."""
        if (oid := self.refs.lookup(revision)) is not None:
            return self._by_oid.get(oid)
        if revision in self._by_oid:
            return self._by_oid[revision]
        if _HEX.fullmatch(revision):
            found = [c for oid, c in list(self._by_oid.items()) if oid.startswith(revision)]
            return found[0] if len(found) == 1 else None
        return None

    def history(self, commit: Commit) -> Iterator[Commit]:
        """`commit` and its ancestors, newest first."""
        current: Commit | None = commit
        while current is not None:
            yield current
            current = self._by_oid.get(current.parent) if current.parent else None

    def content_path(self, blob: Blob) -> Path:
        if blob.lfs:
            return self.lfs_path(blob.sha256)
        return self.folder / "objects" / blob.oid[:2] / blob.oid[2:]

    def read(self, blob: Blob) -> bytes:
        return self.content_path(blob).read_bytes()

    def lfs_path(self, sha256: str) -> Path:
        return self.folder / "lfs" / sha256[:2] / sha256[2:]

    def lfs_size(self, sha256: str) -> int | None:
        """The size of an uploaded LFS object, None when it was never uploaded."""
        path = self.lfs_path(sha256)
        return path.stat().st_size if re.fullmatch(r"[0-9a-f]{64}", sha256) and path.is_file() else None

    def add_lfs(self, source: Path, sha256: str) -> None:
        """Adopt an uploaded file (already checked against `sha256`) as an LFS object."""
        target = self.lfs_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def save_meta(self) -> None:
        _write_atomic(self.folder / "meta.json", json.dumps(self.meta, indent=1).encode())

    def save_refs(self) -> None:
        _write_atomic(self.refs.path, self.refs.to_json())

    def change_refs(self, change: Callable[[Refs], T]) -> T:
        """Apply `change` to the refs and write them, or leave them as they were if it raises."""
        with self.lock:
            before = self.refs.to_json()
            try:
                result = change(self.refs)
                self.save_refs()
            except BaseException:
                self.refs = Refs.load_bytes(self.refs.path, before)
                raise
            return result

    def _append(self, commit: Commit) -> None:
        _append_line(self.folder / "commits.jsonl", (commit.to_json() + "\n").encode())
        self.commits.append(commit)
        self._by_oid[commit.oid] = commit

    def _plan(self, op: Operation) -> Blob | None:
        """The blob an operation will add (None for deletes), without writing anything."""
        if isinstance(op, Put):
            return Blob(git_blob_oid(op.data), len(op.data), hashlib.sha256(op.data).hexdigest())
        if isinstance(op, PutLfs):
            size = self.lfs_size(op.sha256)
            if size is None or (op.size is not None and op.size != size):
                raise MissingObject(f"LFS object {op.sha256} for '{op.path}' was not uploaded to this repo")
            return Blob(git_blob_oid(lfs_pointer(op.sha256, size)), size, op.sha256, lfs=True)
        return None

    def commit(
        self, ops: list[Operation], *, title: str, message: str, author: str, parent: str | None = None,
        branch: str = MAIN, open_pull: int | None = None,
    ) -> Commit:
        """Apply `ops` on top of `branch` (a branch or `refs/pr/N`) as one new commit, and move it there.

        Validates everything before writing; `parent`, when given, must be the branch's tip.
        With `open_pull`, the commit goes to a new `refs/pr/{open_pull}` started at that tip instead.
        """
        for op in ops:
            check_path(op.path.rstrip("/") if isinstance(op, Delete) and op.folder else op.path)
        with self.lock:
            head = self._by_oid[self.refs.tip(branch)] if self.commits else None
            if parent is not None and (head is None or parent != head.oid):
                raise ParentMismatch(PARENT_MISMATCH)
            planned = [(op, self._plan(op)) for op in ops]
            tree = apply_operations(head.tree if head else {}, planned)
            for op, blob in planned:
                if isinstance(op, Put) and blob is not None and not self.content_path(blob).exists():
                    _write_atomic(self.content_path(blob), op.data)
            if open_pull is not None and head is not None:
                self.refs.pulls[open_pull], branch = head.oid, f"refs/pr/{open_pull}"
            commit = _make_commit(head, tree, title=title, message=message, author=author)
            self._land(commit, branch)
            return commit

    def squash(self, branch: str, title: str, author: str) -> Commit:
        """One parentless commit with `branch`'s tree, which the branch then points at (`super-squash`)."""
        with self.lock:
            tip = self._by_oid[self.refs.tip(branch)]
            commit = _make_commit(None, tip.tree, title=title, message="", author=author)
            self._land(commit, branch)
            return commit

    def commit_tree(self, branch: str, build: Callable[[dict[str, Blob]], dict[str, Blob]], *, title: str,
                    author: str) -> Commit:
        """A commit on `branch` whose tree `build` makes from the branch's own, atomically (PR merges)."""
        with self.lock:
            head = self._by_oid[self.refs.tip(branch)]
            commit = _make_commit(head, build(head.tree), title=title, message="", author=author)
            self._land(commit, branch)
            return commit

    def _land(self, commit: Commit, branch: str) -> None:
        """Append `commit` and point `branch` at it (refs written only once the repo has refs beyond main)."""
        self._append(commit)
        self.refs.move(branch, commit.oid)
        if branch != MAIN or self.refs.path.exists() or len(self.refs.branches) > 1:
            self.save_refs()


def _make_commit(head: Commit | None, tree: dict[str, Blob], *, title: str, message: str, author: str) -> Commit:
    date = now_iso()
    parent = head.oid if head else None
    root = tree_oid((path, blob.oid) for path, blob in tree.items())
    text = f"tree {root}\nparent {parent or ''}\nauthor {author} {date}\n\n{title}\n\n{message}"
    oid = hashlib.sha1(b"commit %d\0" % len(text.encode()) + text.encode()).hexdigest()
    return Commit(oid=oid, parent=parent, title=title, message=message, author=author, date=date, tree=tree)


def _load_commits(path: Path) -> list[Commit]:
    """Every complete line of `commits.jsonl`; a torn last line (a crash mid-append) is dropped."""
    if not path.exists():
        return []
    commits = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            commits.append(Commit.from_json(line))
        except (ValueError, TypeError, KeyError):
            continue
    return commits


class RepoStore:
    """Every repo under `root`, loaded at start and kept in memory; writes go to disk at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._repos: dict[tuple[str, str], Repo] = {}
        for meta_file in sorted(root.glob("*s/*/*/meta.json")):
            self._load(meta_file.parent)

    def _folder(self, repo_type: str, repo_id: str) -> Path:
        assert repo_type in REPO_TYPES, repo_type
        namespace, name = repo_id.split("/")
        return self.root / f"{repo_type}s" / namespace / name

    def _load(self, folder: Path) -> None:
        repo_type = folder.parent.parent.name[:-1]
        if repo_type not in REPO_TYPES:
            return
        repo_id = f"{folder.parent.name}/{folder.name}"
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        commits = _load_commits(folder / "commits.jsonl")
        if commits:
            self._repos[(repo_type, repo_id)] = Repo(folder, repo_type, repo_id, meta, commits)

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        """The repo of that id; ids are case-insensitive, as on the Hub."""
        if (repo := self._repos.get((repo_type, repo_id))) is not None:
            return repo
        wanted = repo_id.lower()
        return next((r for (t, i), r in list(self._repos.items()) if t == repo_type and i.lower() == wanted), None)

    def all(self) -> list[Repo]:
        return list(self._repos.values())

    def create(self, repo_type: str, repo_id: str, *, author: str, private: bool = False, **extra: object) -> Repo:
        """A new repo with the Hub's first commit (a `.gitattributes`); RepoExists if taken."""
        with self._lock:
            if self.get(repo_type, repo_id) is not None:
                raise RepoExists(f"You already created this {repo_type} repo: {repo_id}")
            folder = self._folder(repo_type, repo_id)
            shutil.rmtree(folder, ignore_errors=True)  # leftovers of a half-created repo
            meta = {"private": private, "createdAt": now_iso(), "author": author, **extra}
            repo = Repo(folder, repo_type, repo_id, meta, [])
            repo.save_meta()
            repo.commit([Put(".gitattributes", GITATTRIBUTES)], title="initial commit", message="", author=author)
            self._repos[(repo_type, repo_id)] = repo
            return repo

    def delete(self, repo_type: str, repo_id: str) -> bool:
        with self._lock:
            repo = self._repos.pop((repo_type, repo_id), None)
            if repo is None:
                return False
            shutil.rmtree(repo.folder, ignore_errors=True)
            return True

    def move(self, repo: Repo, new_id: str) -> Repo:
        """Rename a repo (`move_repo`); RepoExists when the new name is taken."""
        with self._lock:
            if (repo.repo_type, new_id) in self._repos:
                raise RepoExists(f"You already created this {repo.repo_type} repo: {new_id}")
            folder = self._folder(repo.repo_type, new_id)
            folder.parent.mkdir(parents=True, exist_ok=True)
            with repo.lock:
                os.replace(repo.folder, folder)
                del self._repos[(repo.repo_type, repo.repo_id)]
            self._load(folder)
            return self._repos[(repo.repo_type, new_id)]

    def set_private(self, repo: Repo, private: bool) -> None:
        self.set_meta(repo, private=private)

    def set_meta(self, repo: Repo, **changes: object) -> None:
        with repo.lock:
            repo.meta.update(changes)
            repo.save_meta()


def lfs_tracked(gitattributes: bytes, path: str) -> bool:
    """Whether a `.gitattributes` puts `path` in LFS (`pattern filter=lfs ...`), as git matches it."""
    name = path.rsplit("/", 1)[-1]
    for line in gitattributes.decode("utf-8", errors="replace").splitlines():
        pattern, _, attributes = line.strip().partition(" ")
        if not pattern or pattern.startswith("#") or "filter=lfs" not in attributes.split():
            continue
        if fnmatch.fnmatchcase(path if "/" in pattern else name, pattern.lstrip("/")):
            return True
    return False


def parent_dirs(path: str) -> list[str]:
    """`a/b/c.txt` -> `["a", "a/b"]`."""
    parents = [str(p) for p in PurePosixPath(path).parents if str(p) != "."]
    return list(reversed(parents))

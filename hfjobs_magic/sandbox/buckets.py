"""HF buckets kept as plain files on disk, so a job volume can bind-mount them.

One folder per bucket, `root/{namespace}/{name}/`, holding `bucket.json`
(visibility, creation date), `files/` (the bucket's files at their own paths)
and `index.json` (path -> Xet hash, client mtime, upload date). A file a job
wrote through a volume has no index entry: it is hashed on first listing, and
every entry remembers the (size, mtime_ns) it was computed for, so a file that
changed on disk is hashed again. Knows nothing about HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from hfjobs_magic.sandbox.repos import BadPath, RepoExists, check_path, now_iso, parent_dirs

STAGING = ".staging"  # temp files of `add`, inside the bucket folder but outside `files/`


class XetFiles(Protocol):
    """The part of the Xet store (`sandbox.xet.XetStore`) that buckets use."""

    def ingest_file(self, path: Path) -> tuple[str, int]: ...
    def file_size(self, file_hash: str) -> int | None: ...
    def write_file(self, file_hash: str, dest: Path) -> None: ...


@dataclass(frozen=True)
class BucketFile:
    path: str
    size: int
    xet_hash: str
    mtime_ms: int
    uploaded_at: str

    def to_api(self) -> dict:
        return {"type": "file", "path": self.path, "size": self.size, "xetHash": self.xet_hash,
                "mtime": ms_to_iso(self.mtime_ms), "uploadedAt": self.uploaded_at}


def ms_to_iso(ms: int) -> str:
    """Epoch milliseconds as the Hub writes dates (ISO, milliseconds, Z)."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _write_json(target: Path, value: object) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, target)


class Bucket:
    """One bucket: metadata, its `files/` folder and the hash index of those files."""

    def __init__(self, folder: Path, bucket_id: str, meta: dict) -> None:
        self.folder, self.bucket_id, self.meta = folder, bucket_id, meta
        self.files = folder / "files"
        self.lock = threading.RLock()
        try:
            self._index: dict[str, dict] = json.loads((folder / "index.json").read_text())
        except (OSError, ValueError):
            self._index = {}

    @property
    def namespace(self) -> str:
        return self.bucket_id.split("/")[0]

    @property
    def private(self) -> bool:
        return bool(self.meta.get("private"))

    def save_meta(self) -> None:
        _write_json(self.folder / "bucket.json", self.meta)

    def local_path(self, path: str) -> Path:
        """Where a bucket path lives on disk; refuses `..`, absolute paths, and links (a job may
        have left one in a volume) leading out of the bucket."""
        full = self.files / check_path(path)
        if not Path(os.path.realpath(full)).is_relative_to(os.path.realpath(self.files)):
            raise BadPath(f"Invalid path '{path}': it leads out of the bucket")
        return full

    def walk(self) -> Iterator[tuple[str, os.stat_result]]:
        """(path, stat) of every regular file, in no particular order; links are not followed."""
        for dirpath, _dirs, names in os.walk(self.files):
            for name in names:
                full = Path(dirpath, name)
                try:
                    stat = full.lstat()
                except OSError:
                    continue
                if full.is_file() and not full.is_symlink():
                    yield full.relative_to(self.files).as_posix(), stat

    def usage(self) -> tuple[int, int]:
        """(total bytes, number of files), without hashing anything."""
        sizes = [stat.st_size for _path, stat in self.walk()]
        return sum(sizes), len(sizes)

    def entry(self, xet: XetFiles, path: str, stat: os.stat_result | None = None) -> BucketFile | None:
        """The file at `path` with its Xet hash, hashing it now if it changed since last seen."""
        try:
            full = self.local_path(path)
            stat = stat or full.lstat()
        except (BadPath, OSError):
            return None
        if not full.is_file() or full.is_symlink():
            return None
        stamp = [stat.st_size, stat.st_mtime_ns]
        with self.lock:
            known = self._index.get(path)
            if known is None or known.get("stamp") != stamp:
                xet_hash, _size = xet.ingest_file(full)
                known = {"xetHash": xet_hash, "mtime": stat.st_mtime_ns // 1_000_000, "uploadedAt": now_iso(),
                         "stamp": stamp}
                self._index[path] = known
                self._save_index()
        return BucketFile(path, stat.st_size, known["xetHash"], known["mtime"], known["uploadedAt"])

    def entries(self, xet: XetFiles, prefix: str = "") -> list[BucketFile]:
        """Every file at or under `prefix` ("" for all), sorted by path."""
        found = [
            entry
            for path, stat in self.walk()
            if not prefix or path == prefix or path.startswith(prefix + "/")
            if (entry := self.entry(xet, path, stat)) is not None
        ]
        return sorted(found, key=lambda e: e.path)

    def add(self, xet: XetFiles, path: str, xet_hash: str, mtime_ms: int) -> None:
        """Write the Xet file `xet_hash` at `path`, dated `mtime_ms` so a later sync sees it unchanged."""
        target = self.local_path(path)
        if xet.file_size(xet_hash) is None:
            raise KeyError(f"unknown Xet hash {xet_hash}: upload the file first")
        if clash := next((d for d in parent_dirs(path) if (self.files / d).is_file()), None):
            raise BadPath(f"Invalid path '{path}': '{clash}' is a file")
        if target.is_dir():
            raise BadPath(f"Invalid path '{path}': a folder with this name exists")
        staging = self.folder / STAGING
        staging.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=staging)
        os.close(fd)
        try:
            xet.write_file(xet_hash, Path(tmp))
            os.utime(tmp, ns=(mtime_ms * 1_000_000, mtime_ms * 1_000_000))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        stat = target.lstat()
        with self.lock:
            self._index[path] = {"xetHash": xet_hash, "mtime": mtime_ms, "uploadedAt": now_iso(),
                                 "stamp": [stat.st_size, stat.st_mtime_ns]}
            self._save_index()

    def delete(self, path: str) -> None:
        """Remove a file (absent is fine), then any folders it leaves empty."""
        target = self.local_path(path)
        target.unlink(missing_ok=True)
        with self.lock:
            if self._index.pop(path, None) is not None:
                self._save_index()
        for folder in reversed(parent_dirs(path)):
            try:
                (self.files / folder).rmdir()
            except OSError:
                break

    def holds(self, xet_hash: str) -> bool:
        """Whether a file with this hash was added to the bucket (a copy source must hold it)."""
        with self.lock:
            return any(entry.get("xetHash") == xet_hash for entry in self._index.values())

    def _save_index(self) -> None:
        _write_json(self.folder / "index.json", self._index)


class BucketStore:
    """Every bucket under `root`, found on disk at start; a restart on the same data dir keeps them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._buckets: dict[str, Bucket] = {}
        for meta_file in sorted(root.glob("*/*/bucket.json")):
            folder = meta_file.parent
            bucket_id = f"{folder.parent.name}/{folder.name}"
            self._buckets[bucket_id] = Bucket(folder, bucket_id, json.loads(meta_file.read_text()))

    def get(self, bucket_id: str) -> Bucket | None:
        return self._buckets.get(bucket_id)

    def all(self) -> list[Bucket]:
        return list(self._buckets.values())

    def create(self, bucket_id: str, *, private: bool, author: str) -> Bucket:
        with self._lock:
            if bucket_id in self._buckets:
                raise RepoExists(f"You already created this bucket: {bucket_id}")
            namespace, name = bucket_id.split("/")
            folder = self.root / namespace / name
            shutil.rmtree(folder, ignore_errors=True)  # leftovers of a half-created bucket
            (folder / "files").mkdir(parents=True)
            bucket = Bucket(folder, bucket_id, {"private": private, "createdAt": now_iso(), "author": author})
            bucket.save_meta()
            self._buckets[bucket_id] = bucket
            return bucket

    def delete(self, bucket_id: str) -> bool:
        with self._lock:
            bucket = self._buckets.pop(bucket_id, None)
        if bucket is None:
            return False
        shutil.rmtree(bucket.folder, ignore_errors=True)
        return True

    def move(self, bucket: Bucket, new_id: str) -> Bucket:
        """Rename a bucket (`move_bucket`); RepoExists when the new name is taken."""
        with self._lock:
            if new_id in self._buckets:
                raise RepoExists(f"You already created this bucket: {new_id}")
            folder = self.root.joinpath(*new_id.split("/"))
            folder.parent.mkdir(parents=True, exist_ok=True)
            with bucket.lock:
                os.replace(bucket.folder, folder)
                del self._buckets[bucket.bucket_id]
            moved = Bucket(folder, new_id, bucket.meta)
            self._buckets[new_id] = moved
            return moved

    def set_private(self, bucket: Bucket, private: bool) -> None:
        with bucket.lock:
            bucket.meta["private"] = private
            bucket.save_meta()

"""`XetStore`: the sandbox's content-addressed storage, on disk under `data_dir/xet`.

Layout: `xorbs/ab/<hash>` (the chunks as uploaded) with `<hash>.json` (each chunk's hash, length
and offset), `files/ab/<hash>.json` (a file's terms, size and sha256), `sha256/ab/<sha256>` (the
file hash of content whose sha256 the sandbox checked itself) and `claims/ab/<sha256>/<scope>`
(what a shard uploaded with a token for `scope` said, checked when a commit in that repo needs
it); uploads arrive in `incoming/`. Every file is written whole then renamed into place, so
readers need no lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from hfjobs_magic.sandbox.xet import chunking, shard, xorb
from hfjobs_magic.sandbox.xet.hashing import chunk_hash, file_hash, from_hex, is_hex_hash, range_hash, to_hex
from hfjobs_magic.sandbox.xet.tokens import Tokens
from hfjobs_magic.sandbox.xet.xorb import BadXorb, XorbIndex

XORB_TARGET_BYTES = 60 * 1024 * 1024  # `ingest_file` closes a xorb near the 64 MiB limit
INDEXES_KEPT = 64  # parsed xorb indexes held in memory (a few MB at most)


@dataclass(frozen=True)
class Piece:
    """One term of a reconstruction, with where its chunks lie in the stored xorb (bytes inclusive)."""

    term: shard.Term
    first_byte: int
    last_byte: int
    file_offset: int  # where the term's first chunk starts in the file


def _feed(digest: hashlib._Hash, chunks: list[bytes | memoryview]) -> None:
    for data in chunks:
        digest.update(data)


def _write_atomic(target: Path, data: bytes | memoryview) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, target)


class XetStore:
    """Xorbs, file reconstructions and sha256 links of the sandbox's Xet CAS, plus its tokens."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tokens = Tokens()
        self._chunks: dict[bytes, tuple[str, int]] | None = None  # chunk hash -> (xorb, index), lazily
        self._indexes: OrderedDict[str, XorbIndex] = OrderedDict()  # recently read, oldest first
        self._lock = threading.Lock()

    # -- the interface other sandbox parts use -----------------------------------------------
    def token_answer(self, *, scope: str, write: bool, cas_url: str) -> dict:
        """A fresh CAS token as the Hub's token routes answer it: `{"accessToken", "exp", "casUrl"}`."""
        token, grant = self.tokens.issue(scope, write)
        return {"accessToken": token, "exp": grant.expires, "casUrl": cas_url}

    def file_size(self, file_hash: str) -> int | None:
        record = self.file_record(file_hash)
        return None if record is None else record["size"]

    def write_file(self, file_hash: str, dest: Path) -> None:
        """Reconstruct a file's bytes into `dest`; KeyError when the store does not know it."""
        self._reconstruct(file_hash, dest, None)

    def _reconstruct(self, file_hash: str, dest: Path, digest: hashlib._Hash | None) -> None:
        """Write a file's bytes into `dest`, feeding them to `digest` on the way (one pass).

        The digest runs on a second thread, a term behind the writes: both release the GIL, so
        hashing and writing a large file overlap instead of adding up.
        """
        if self.file_record(file_hash) is None:
            raise KeyError(file_hash)
        with open(dest, "wb") as out, ThreadPoolExecutor(1) as hasher:
            pending: list[Future] = []
            for piece in self.pieces(file_hash):
                chunks = self.term_chunks(piece)
                if digest is not None:
                    pending.append(hasher.submit(_feed, digest, chunks))  # one worker: updates stay in order
                out.writelines(chunks)
                while len(pending) > 1:  # at most two terms held in memory
                    pending.pop(0).result()
            for future in pending:
                future.result()

    def ingest_file(self, path: Path) -> tuple[str, int]:
        """Chunk, hash and store a local file (known chunks are not stored again); (file hash, size)."""
        return _Ingest(self).run(path)

    # -- paths and records ----------------------------------------------------------------------
    def _path(self, kind: str, name: str) -> Path:
        return self.root / kind / name[:2] / name

    def xorb_path(self, xorb_hash: str) -> Path:
        return self._path("xorbs", xorb_hash)

    def has_xorb(self, xorb_hash: str) -> bool:
        return is_hex_hash(xorb_hash) and self.xorb_path(xorb_hash).is_file()

    def xorb_index(self, xorb_hash: str) -> XorbIndex | None:
        """A stored xorb's index, kept parsed for the next few look-ups (a xorb never changes, and
        every reconstruction, dedupe answer and shard check reads it)."""
        if not is_hex_hash(xorb_hash):
            return None
        with self._lock:
            if (cached := self._indexes.get(xorb_hash)) is not None:
                self._indexes.move_to_end(xorb_hash)
                return cached
        try:
            raw = json.loads(self._path("xorbs", xorb_hash + ".json").read_text())
        except FileNotFoundError:
            return None
        index = XorbIndex([bytes.fromhex(h) for h in raw["hashes"]], raw["lengths"], raw["offsets"])
        with self._lock:
            self._indexes[xorb_hash] = index
            while len(self._indexes) > INDEXES_KEPT:
                self._indexes.popitem(last=False)
        return index

    def file_record(self, file_hash: str) -> dict | None:
        if not is_hex_hash(file_hash):
            return None
        try:
            return json.loads(self._path("files", file_hash + ".json").read_text())
        except FileNotFoundError:
            return None

    # -- uploads ------------------------------------------------------------------------------------
    def staging_path(self) -> Path:
        """A new empty file to receive an upload into, next to where it will be kept."""
        (self.root / "incoming").mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root / "incoming", prefix="xorb-")
        os.close(fd)
        return Path(tmp)

    def add_xorb(self, xorb_hash: str, body: bytes, staged: Path | None = None) -> bool:
        """Check and keep an uploaded xorb; False when it was already there. BadXorb when malformed.

        `staged`, if given, is a file already holding `body` (written while it arrived): it is kept
        by renaming, so the upload's bytes are not written twice.
        """
        if not is_hex_hash(xorb_hash):
            raise BadXorb(f"not a xorb hash: {xorb_hash[:80]!r}")
        if len(body) > xorb.MAX_UPLOAD_BYTES:
            raise BadXorb(f"xorb of {len(body)} bytes is over the limit of {xorb.MAX_UPLOAD_BYTES} bytes")
        index, end = xorb.parse(body)
        if index.hash != xorb_hash:
            raise BadXorb(f"xorb hash is {index.hash}, not {xorb_hash}")
        if self.has_xorb(xorb_hash):
            return False
        if staged is None:
            self._keep_xorb(xorb_hash, memoryview(body)[:end], index)
        else:
            os.truncate(staged, end)  # without the client's metadata footer
            self._keep_xorb(xorb_hash, staged, index)
        return True

    def _keep_xorb(self, xorb_hash: str, chunks: bytes | memoryview | Path, index: XorbIndex) -> None:
        meta = {"hashes": [h.hex() for h in index.hashes], "lengths": index.lengths, "offsets": index.offsets}
        _write_atomic(self._path("xorbs", xorb_hash + ".json"), json.dumps(meta).encode())
        if isinstance(chunks, Path):  # last: the xorb file's presence means "stored"
            self.xorb_path(xorb_hash).parent.mkdir(parents=True, exist_ok=True)
            os.replace(chunks, self.xorb_path(xorb_hash))
        else:
            _write_atomic(self.xorb_path(xorb_hash), chunks)
        with self._lock:
            if self._chunks is not None:
                self._chunks.update({h: (xorb_hash, i) for i, h in enumerate(index.hashes)})

    def add_shard(self, body: bytes, scope: str = "") -> bool:
        """Check an uploaded shard against the stored xorbs and keep its files; BadShard when it fails.

        `scope` is what the uploader's token was issued for: a commit there may name the files'
        sha256 (see `land_sha256`).
        """
        files = shard.parse(body)
        for entry in files:
            self._check_file(entry)
        added = False
        for entry in files:
            added |= self._keep_file(entry, scope)
        return added

    def _check_file(self, entry: shard.FileEntry) -> None:
        for i, term in enumerate(entry.terms):
            index = self.xorb_index(term.xorb)
            if index is None or not self.has_xorb(term.xorb):
                raise shard.BadShard(f"file {entry.hash} names xorb {term.xorb}, which was not uploaded")
            if term.end > len(index.lengths) or sum(index.lengths[term.start : term.end]) != term.length:
                raise shard.BadShard(f"file {entry.hash}: term {i} does not match xorb {term.xorb}")
            assert entry.verification is not None  # shard.parse insists
            if range_hash(index.hashes[term.start : term.end]) != entry.verification[i]:
                raise shard.BadShard(f"file {entry.hash}: verification hash of term {i} does not match")

    def _claim_path(self, sha256: str, scope: str) -> Path | None:
        valid = re.fullmatch(r"[0-9a-f]{64}", sha256)
        return self._path("claims", sha256) / quote(scope, safe="") if valid else None

    def _keep_file(self, entry: shard.FileEntry, scope: str) -> bool:
        claim = self._claim_path(entry.sha256, scope) if entry.sha256 is not None else None
        if claim is not None:
            _write_atomic(claim, entry.hash.encode())
        if self.file_record(entry.hash) is not None:
            return False
        terms = [[t.xorb, t.start, t.end, t.length] for t in entry.terms]
        record = {"size": entry.size, "sha256": entry.sha256, "terms": terms}
        _write_atomic(self._path("files", entry.hash + ".json"), json.dumps(record).encode())
        return True

    # -- sha256 links, for repo commits that name an LFS oid ---------------------------------------
    def file_for_sha256(self, sha256: str) -> str | None:
        """The file hash of content whose sha256 the sandbox has checked."""
        path = self._path("sha256", sha256)
        return path.read_text() if re.fullmatch(r"[0-9a-f]{64}", sha256) and path.is_file() else None

    def land_sha256(self, sha256: str, dest: Path, scope: str) -> bool:
        """Write the content uploaded to `scope` as `sha256` into `dest` if its sha256 really is that.

        Only an upload with a token for `scope` counts: knowing a sha256 is no proof of having the
        bytes, so a commit cannot pull in another repo's file by naming it.
        """
        claim = self._claim_path(sha256, scope)
        candidate = claim.read_text() if claim is not None and claim.is_file() else None
        if candidate is None or self.file_record(candidate) is None:
            return False
        digest = hashlib.sha256()
        self._reconstruct(candidate, dest, digest)
        if digest.hexdigest() != sha256:
            dest.unlink(missing_ok=True)
            return False
        _write_atomic(self._path("sha256", sha256), candidate.encode())
        return True

    # -- downloads ----------------------------------------------------------------------------------
    def pieces(self, file_hash: str, first: int = 0, last: int | None = None) -> Iterator[Piece]:
        """The terms covering bytes [first, last] of a file, trimmed to the chunks that hold them."""
        record = self.file_record(file_hash)
        if record is None:
            raise KeyError(file_hash)
        at = 0
        for xorb_hash, start, end, length in record["terms"]:
            if (last is None or at <= last) and at + length > first:
                yield self._trimmed(xorb_hash, start, end, at, first, last)
            at += length

    def _trimmed(self, xorb_hash: str, start: int, end: int, at: int, first: int, last: int | None) -> Piece:
        index = self.xorb_index(xorb_hash)
        assert index is not None
        while at + index.lengths[start] <= first:  # chunks wholly before the range
            at += index.lengths[start]
            start += 1
        stop, pos = start, at
        while stop < end and (last is None or pos <= last):
            pos += index.lengths[stop]
            stop += 1
        term = shard.Term(xorb_hash, sum(index.lengths[start:stop]), start, stop)
        return Piece(term, index.offsets[start], index.offsets[stop] - 1, at)

    def term_chunks(self, piece: Piece) -> list[bytes | memoryview]:
        with open(self.xorb_path(piece.term.xorb), "rb") as handle:
            handle.seek(piece.first_byte)
            blob = handle.read(piece.last_byte - piece.first_byte + 1)
        return xorb.read_chunks(blob, piece.term.end - piece.term.start)

    # -- global dedupe --------------------------------------------------------------------------------
    def chunk_location(self, chunk: bytes) -> tuple[str, int] | None:
        with self._lock:
            if self._chunks is None:
                self._chunks = dict(self._scan_chunks())
            return self._chunks.get(chunk)

    def _scan_chunks(self) -> Iterator[tuple[bytes, tuple[str, int]]]:
        for meta in (self.root / "xorbs").glob("*/*.json"):
            index = self.xorb_index(meta.name.removesuffix(".json"))
            for i, h in enumerate(index.hashes if index else []):
                yield h, (meta.name.removesuffix(".json"), i)

    def dedupe_answer(self, chunk_hex: str) -> bytes | None:
        """A shard naming the xorb that holds a chunk, or None when no stored xorb does."""
        found = self.chunk_location(from_hex(chunk_hex))
        if found is None:
            return None
        index = self.xorb_index(found[0])
        assert index is not None
        return shard.dedupe_shard(from_hex(found[0]), index, self.xorb_path(found[0]).stat().st_size)


class _Ingest:
    """One `ingest_file`: known chunks become references, new ones go into new xorbs of ~60 MiB."""

    def __init__(self, store: XetStore) -> None:
        self.store = store
        self.terms: list[list] = []  # [xorb, start, end, length], or a pending xorb's slot as xorb None
        self.pending: list[tuple[bytes, bytes]] = []  # (hash, chunk) of the xorb being filled
        self.pending_bytes = 0

    def run(self, path: Path) -> tuple[str, int]:
        nodes, sha = [], hashlib.sha256()
        for data in chunking.file_chunks(path):
            h = chunk_hash(data)
            nodes.append((h, len(data)))
            sha.update(data)
            self._add(h, data)
        self._flush()
        fh = to_hex(file_hash(nodes))
        size = sum(n for _, n in nodes)
        if self.store.file_record(fh) is None:
            record = {"size": size, "sha256": sha.hexdigest(), "terms": self.terms}
            _write_atomic(self.store._path("files", fh + ".json"), json.dumps(record).encode())
        _write_atomic(self.store._path("sha256", sha.hexdigest()), fh.encode())
        return fh, size

    def _add(self, h: bytes, data: bytes) -> None:
        known = self.store.chunk_location(h)
        if known is not None:
            self._extend(known[0], known[1], len(data))
            return
        if self.pending_bytes + len(data) > XORB_TARGET_BYTES:
            self._flush()
        self._extend(None, len(self.pending), len(data))
        self.pending.append((h, data))
        self.pending_bytes += len(data)

    def _extend(self, xorb_hash: str | None, index: int, length: int) -> None:
        last = self.terms[-1] if self.terms else None
        if last is not None and last[0] == xorb_hash and last[2] == index:
            last[2], last[3] = index + 1, last[3] + length
        else:
            self.terms.append([xorb_hash, index, index + 1, length])

    def _flush(self) -> None:
        """Store the pending chunks as one xorb and point their terms at it."""
        if not self.pending:
            return
        blobs = [xorb.serialize_chunk(data) for _, data in self.pending]
        offsets = [0]
        for blob in blobs:
            offsets.append(offsets[-1] + len(blob))
        index = XorbIndex([h for h, _ in self.pending], [len(d) for _, d in self.pending], offsets)
        xorb_hash = index.hash
        if not self.store.has_xorb(xorb_hash):
            self.store._keep_xorb(xorb_hash, b"".join(blobs), index)
        for term in self.terms:
            if term[0] is None:
                term[0] = xorb_hash
        self.pending, self.pending_bytes = [], 0

"""Shards (hub-docs `docs/xet/shard.md`): the file reconstructions a client uploads, and dedupe answers.

An uploaded shard lists files (terms naming chunk ranges of xorbs, a verification hash per term,
the file's sha256) and the new xorbs' chunk hashes. The sandbox keeps the files; it learns xorbs
from the xorbs themselves. It writes shards only to answer a global dedupe query.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from hfjobs_magic.sandbox.xet.hashing import to_hex
from hfjobs_magic.sandbox.xet.xorb import XorbIndex

TAG = b"HFRepoMetaData\x00" + bytes([85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169])
HEADER_VERSION, FOOTER_VERSION = 2, 1
RECORD = 48  # every entry of both sections is 48 bytes
FOOTER_SIZE = 200
BOOKEND = b"\xff" * 32 + bytes(16)
WITH_VERIFICATION, WITH_METADATA = 1 << 31, 1 << 30
DEDUPE_EXPIRY_S = 7 * 24 * 3600


class BadShard(ValueError):
    """The body is not a well-formed shard."""


@dataclass(frozen=True)
class Term:
    xorb: str  # hex
    length: int  # bytes once uncompressed
    start: int  # chunk range [start, end) in the xorb
    end: int


@dataclass(frozen=True)
class FileEntry:
    hash: str
    terms: list[Term]
    verification: list[bytes] | None  # one range hash per term
    sha256: str | None

    @property
    def size(self) -> int:
        return sum(t.length for t in self.terms)


class _Reader:
    def __init__(self, body: bytes) -> None:
        self.body, self.at = body, 0

    def record(self) -> bytes:
        if self.at + RECORD > len(self.body):
            raise BadShard(f"shard ends inside a record at byte {self.at}")
        self.at += RECORD
        return self.body[self.at - RECORD : self.at]

    def count(self, n: int) -> int:
        if n * RECORD > len(self.body) - self.at:
            raise BadShard(f"shard announces {n} records, it has room for fewer")
        return n


def _term(record: bytes) -> Term:
    _flags, length, start, end = struct.unpack_from("<IIII", record, 32)
    if end <= start:
        raise BadShard(f"empty chunk range [{start}, {end})")
    return Term(to_hex(record[:32]), length, start, end)


def _file(reader: _Reader, head: bytes) -> FileEntry:
    flags, n = struct.unpack_from("<II", head, 32)  # n is 0 for an empty file
    terms = [_term(reader.record()) for _ in range(reader.count(n))]
    verification = [reader.record()[:32] for _ in range(n)] if flags & WITH_VERIFICATION else None
    sha256 = to_hex(reader.record()[:32]) if flags & WITH_METADATA else None
    return FileEntry(to_hex(head[:32]), terms, verification, sha256)


def _skip_cas_blocks(reader: _Reader) -> None:
    while (head := reader.record())[:32] != BOOKEND[:32]:
        (n,) = struct.unpack_from("<I", head, 36)
        reader.at += RECORD * reader.count(n)


def parse(body: bytes) -> list[FileEntry]:
    """The files of an uploaded shard (checked for shape, not yet against the store)."""
    if len(body) < RECORD or body[:32] != TAG:
        raise BadShard("not a shard: bad header tag")
    version, _footer_size = struct.unpack_from("<QQ", body, 32)
    if version != HEADER_VERSION:
        raise BadShard(f"unsupported shard version {version}")
    reader, files = _Reader(body), []
    reader.at = RECORD
    while (head := reader.record())[:32] != BOOKEND[:32]:
        files.append(_file(reader, head))
    _skip_cas_blocks(reader)
    if files and any(f.verification is None for f in files):
        raise BadShard("every file of an uploaded shard needs verification entries")
    return files


def _truncated(raw_hash: bytes) -> int:
    """A hash's key in the shard's lookup tables: its first quarter as a little-endian u64."""
    return int.from_bytes(raw_hash[:8], "little")


def dedupe_shard(xorb_raw_hash: bytes, index: XorbIndex, xorb_bytes: int) -> bytes:
    """A shard with no files and one xorb's chunk list: the answer to a global dedupe query.

    With the footer xet-core reads (the spec's reserved space holds lookup tables: file, xorb and
    chunk keys sorted, pointing at record indexes) and chunk hashes in the clear (no HMAC key).
    """
    n, raw_bytes = len(index.hashes), sum(index.lengths)
    xorb_info = xorb_raw_hash + struct.pack("<IIII", 0, n, raw_bytes, xorb_bytes)
    entries = zip(index.hashes, index.offsets[:-1], index.lengths, strict=True)
    xorb_info += b"".join(h + struct.pack("<II", offset, length) + bytes(8) for h, offset, length in entries)
    xorb_offset = RECORD + RECORD  # after the header and the empty file section's bookend
    lookups_offset = xorb_offset + len(xorb_info) + RECORD
    xorb_lookup = struct.pack("<QI", _truncated(xorb_raw_hash), 0)
    chunk_keys = sorted((_truncated(h), i) for i, h in enumerate(index.hashes))
    chunk_lookup = b"".join(struct.pack("<QII", key, 0, i) for key, i in chunk_keys)
    footer_offset = lookups_offset + len(xorb_lookup) + len(chunk_lookup)
    now = int(time.time())
    footer = struct.pack("<QQQ", FOOTER_VERSION, RECORD, xorb_offset)
    footer += struct.pack("<6Q", lookups_offset, 0, lookups_offset, 1, lookups_offset + len(xorb_lookup), n)
    footer += bytes(32) + struct.pack("<QQ", now, now + DEDUPE_EXPIRY_S) + bytes(48)
    footer += struct.pack("<QQQQ", xorb_bytes, raw_bytes, raw_bytes, footer_offset)
    assert len(footer) == FOOTER_SIZE
    body = BOOKEND + xorb_info + BOOKEND + xorb_lookup + chunk_lookup
    return TAG + struct.pack("<QQ", HEADER_VERSION, FOOTER_SIZE) + body + footer

"""Xorbs (hub-docs `docs/xet/xorb.md`): a run of chunks, each an 8-byte header and its compressed bytes.

The sandbox reads every chunk of an uploaded xorb (decompressing it) to check the hash the client
claims, and writes xorbs of its own for `ingest_file`. A client may append xet-core's `XETBLOB`
metadata footer after the last chunk; it is not needed to serve the xorb and is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import lz4.frame

from hfjobs_magic.sandbox.xet.hashing import Node, chunk_hash, merkle_root, to_hex

HEADER_SIZE = 8
VERSION = 0
NONE, LZ4, BG4_LZ4 = 0, 1, 2
MAX_CHUNK_BYTES = 128 * 1024
MAX_XORB_BYTES = 64 * 1024 * 1024
MAX_UPLOAD_BYTES = MAX_XORB_BYTES + 1024 * 1024  # room for chunk headers and the client's footer
FOOTER_IDENT = b"XETBLOB"


class BadXorb(ValueError):
    """The body is not a well-formed xorb, or not the one its hash names."""


@dataclass(frozen=True)
class XorbIndex:
    """Where each chunk lies in the stored xorb: `offsets` has one more entry (the end) than chunks."""

    hashes: list[bytes]
    lengths: list[int]  # uncompressed
    offsets: list[int]

    @property
    def nodes(self) -> list[Node]:
        return list(zip(self.hashes, self.lengths, strict=True))

    @property
    def hash(self) -> str:
        return to_hex(merkle_root(self.nodes))


def _ungroup(grouped: bytes) -> bytes:
    """Undo byte grouping: group g holds bytes g, g+4, g+8, ... (the first `n % 4` groups one longer)."""
    n, out = len(grouped), bytearray(len(grouped))
    at = 0
    for g in range(4):
        size = n // 4 + (1 if g < n % 4 else 0)
        out[g::4] = grouped[at : at + size]
        at += size
    return bytes(out)


def decompress(scheme: int, data: bytes | memoryview) -> bytes | memoryview:
    """A chunk's bytes; an uncompressed chunk comes back as the view it was given (no copy)."""
    if scheme == NONE:
        return data
    if scheme not in (LZ4, BG4_LZ4):
        raise BadXorb(f"unknown compression scheme {scheme}")
    try:
        raw = lz4.frame.decompress(data)
    except RuntimeError as err:
        raise BadXorb(f"bad LZ4 data: {err}") from err
    return _ungroup(raw) if scheme == BG4_LZ4 else raw


def _chunk_at(body: memoryview, at: int) -> tuple[bytes | memoryview, int]:
    """The uncompressed chunk whose header starts at `at`, and where the next one starts."""
    header = body[at : at + HEADER_SIZE]
    if len(header) < HEADER_SIZE or header[0] != VERSION:
        raise BadXorb(f"bad chunk header at byte {at}")
    size, scheme, length = int.from_bytes(header[1:4], "little"), header[4], int.from_bytes(header[5:8], "little")
    end = at + HEADER_SIZE + size
    if end > len(body) or length > MAX_CHUNK_BYTES:
        raise BadXorb(f"truncated or oversized chunk at byte {at}")
    data = decompress(scheme, body[at + HEADER_SIZE : end])
    if len(data) != length:
        raise BadXorb(f"chunk at byte {at} decompresses to {len(data)} bytes, its header says {length}")
    return data, end


def parse(body: bytes) -> tuple[XorbIndex, int]:
    """Index every chunk of an uploaded xorb; returns the index and where the chunks end."""
    hashes, lengths, offsets, at = [], [], [], 0
    view = memoryview(body)
    while at < len(body) and not body.startswith(FOOTER_IDENT, at):
        data, end = _chunk_at(view, at)
        hashes.append(chunk_hash(data))
        lengths.append(len(data))
        offsets.append(at)
        at = end
    if not hashes:
        raise BadXorb("a xorb needs at least one chunk")
    return XorbIndex(hashes, lengths, [*offsets, at]), at


def serialize_chunk(data: bytes) -> bytes:
    """One chunk, LZ4-compressed unless that does not make it smaller."""
    packed, scheme = lz4.frame.compress(data), LZ4
    if len(packed) >= len(data):
        packed, scheme = data, NONE
    header = bytes([VERSION]) + len(packed).to_bytes(3, "little") + bytes([scheme]) + len(data).to_bytes(3, "little")
    return header + packed


def read_chunks(blob: bytes, count: int) -> list[bytes | memoryview]:
    """The first `count` chunks of a byte range of a stored xorb, uncompressed (views into `blob`
    where stored uncompressed, so incompressible data is not copied)."""
    chunks, at, view = [], 0, memoryview(blob)
    for _ in range(count):
        data, at = _chunk_at(view, at)
        chunks.append(data)
    return chunks

"""The Xet hashes (hub-docs `docs/xet/hashing.md`): chunk, xorb (merkle), file and term verification.

All are blake3 keyed hashes of 32 bytes. As strings they use the spec's odd form: each
8-byte quarter is read as a little-endian u64 and printed as 16 hex digits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from blake3 import blake3

DATA_KEY = bytes(
    [102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
     157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41]
)  # fmt: skip
INTERNAL_NODE_KEY = bytes(
    [1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230,
     93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63]
)  # fmt: skip
VERIFICATION_KEY = bytes(
    [127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243,
     164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195]
)  # fmt: skip
FILE_KEY = bytes(32)  # a file hash is the merkle root hashed again with an all-zero key

MEAN_BRANCHING = 4  # a merkle node closes on a child whose hash is 0 mod 4 ...
MAX_CHILDREN = 2 * MEAN_BRANCHING + 1  # ... and has between 2 and 9 children
_HEX64 = re.compile(r"[0-9a-f]{64}")

Node = tuple[bytes, int]  # (hash, number of bytes under it)


def keyed_hash(key: bytes, data: bytes) -> bytes:
    return blake3(data, key=key).digest()


def chunk_hash(data: bytes) -> bytes:
    return keyed_hash(DATA_KEY, data)


def to_hex(raw: bytes) -> str:
    """The spec's string form: every 8-byte quarter reversed, then hex."""
    return b"".join(raw[i : i + 8][::-1] for i in range(0, 32, 8)).hex()


def from_hex(text: str) -> bytes:
    """Inverse of `to_hex`; ValueError unless 64 lowercase hex digits."""
    if not _HEX64.fullmatch(text):
        raise ValueError(f"not a Xet hash: {text[:80]!r}")
    raw = bytes.fromhex(text)
    return b"".join(raw[i : i + 8][::-1] for i in range(0, 32, 8))


def is_hex_hash(text: str) -> bool:
    return bool(_HEX64.fullmatch(text))


def _merge(nodes: Sequence[Node]) -> Node:
    text = "".join(f"{to_hex(h)} : {size}\n" for h, size in nodes)
    return keyed_hash(INTERNAL_NODE_KEY, text.encode()), sum(size for _, size in nodes)


def _next_cut(nodes: Sequence[Node], start: int) -> int:
    """End (exclusive) of the group of children starting at `start`."""
    left = len(nodes) - start
    if left <= 2:
        return len(nodes)
    end = start + min(MAX_CHILDREN, left)
    for i in range(start + 2, end):
        if nodes[i][0][24] % MEAN_BRANCHING == 0:  # the last quarter as a little-endian u64, mod 4
            return i + 1
    return end


def merkle_root(nodes: Sequence[Node]) -> bytes:
    """The xorb hash of its chunks (hash, length); all zeros for no chunks."""
    level = list(nodes)
    if not level:
        return bytes(32)
    while len(level) > 1:
        merged, start = [], 0
        while start < len(level):
            cut = _next_cut(level, start)
            merged.append(_merge(level[start:cut]))
            start = cut
        level = merged
    return level[0][0]


def file_hash(nodes: Sequence[Node]) -> bytes:
    """The file hash of all the chunks of a file, in order; all zeros for an empty file."""
    return keyed_hash(FILE_KEY, merkle_root(nodes)) if nodes else bytes(32)


def range_hash(chunk_hashes: Sequence[bytes]) -> bytes:
    """The verification hash of a term: its chunks' raw hashes, concatenated."""
    return keyed_hash(VERIFICATION_KEY, b"".join(chunk_hashes))

"""The CAS HTTP API (hub-docs `docs/xet/api.md`) under `/cas`, as hf_xet calls it.

Every route wants a token from the Hub's `xet-*-token` routes (`Authorization: Bearer`). Xorb
bytes are fetched from URLs the reconstruction answer signs (like the Hub's CDN URLs they carry
no token), so any client that can reach the sandbox can download, from this machine or another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from hfjobs_magic.sandbox.xet.shard import BadShard
from hfjobs_magic.sandbox.xet.store import Piece, XetStore
from hfjobs_magic.sandbox.xet.tokens import Grant, TokenRefused
from hfjobs_magic.sandbox.xet.xorb import MAX_UPLOAD_BYTES, BadXorb

CAS_PREFIX = "/cas"
MAX_SHARD_BYTES = 64 * 1024 * 1024
URL_TTL_S = 3600
_SECRET = secrets.token_bytes(32)  # signs xorb URLs
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def cas_url(request: Request) -> str:
    """The CAS base URL as the caller reaches the sandbox (so it works from another machine too)."""
    return f"{str(request.base_url).rstrip('/')}{CAS_PREFIX}"


def xet(request: Request) -> XetStore:
    return request.app.state.sandbox.xet


def _grant(request: Request, *, write: bool) -> Grant:
    try:
        return xet(request).tokens.check(request.headers.get("authorization"), write=write)
    except TokenRefused as err:
        raise HTTPException(err.status, str(err)) from err


def _hash_param(request: Request, name: str) -> str:
    value = request.path_params[name]
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise HTTPException(400, f"Malformed hash: {value[:80]!r}")
    return value


def _prefix(request: Request, *expected: str) -> None:
    if request.path_params["prefix"] not in expected:
        raise HTTPException(400, f"Unknown prefix {request.path_params['prefix']!r}, expected {expected[0]!r}")


def _check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"Body of {length} bytes is over the limit of {limit} bytes")


async def _body(request: Request, limit: int) -> bytes:
    _check_length(request, limit)
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(413, f"Body is over the limit of {limit} bytes")
    return body


async def _receive_into(request: Request, staged: Path, limit: int) -> bytes:
    """The body, also written to `staged` as it arrives (so the disk works while the network does)."""
    _check_length(request, limit)
    parts, received = [], 0
    with open(staged, "wb") as handle:
        async for part in request.stream():
            received += len(part)
            if received > limit:
                raise HTTPException(413, f"Body is over the limit of {limit} bytes")
            handle.write(part)
            parts.append(part)
    return b"".join(parts)


# -- uploads ------------------------------------------------------------------------------------


async def upload_xorb(request: Request) -> JSONResponse:
    _grant(request, write=True)
    _prefix(request, "default")
    xorb_hash = _hash_param(request, "hash")
    staged = xet(request).staging_path()
    try:
        body = await _receive_into(request, staged, MAX_UPLOAD_BYTES)
        inserted = await run_in_threadpool(xet(request).add_xorb, xorb_hash, body, staged)
    except BadXorb as err:
        raise HTTPException(400, f"Bad xorb: {err}") from err
    finally:
        staged.unlink(missing_ok=True)
    return JSONResponse({"was_inserted": inserted})


async def head_xorb(request: Request) -> Response:
    _grant(request, write=False)
    _prefix(request, "default")
    xorb_hash = _hash_param(request, "hash")
    if not xet(request).has_xorb(xorb_hash):
        raise HTTPException(404, "Xorb not found")
    return Response(headers={"Content-Length": str(xet(request).xorb_path(xorb_hash).stat().st_size)})


async def upload_shard(request: Request) -> JSONResponse:
    grant = _grant(request, write=True)
    body = await _body(request, MAX_SHARD_BYTES)
    try:
        added = await run_in_threadpool(xet(request).add_shard, body, grant.scope)
    except BadShard as err:
        raise HTTPException(400, f"Bad shard: {err}") from err
    return JSONResponse({"result": 1 if added else 0})


async def dedupe_chunk(request: Request) -> Response:
    _grant(request, write=False)
    _prefix(request, "default-merkledb", "default")  # the spec names the first, hf_xet 1.8 sends the second
    answer = await run_in_threadpool(xet(request).dedupe_answer, _hash_param(request, "hash"))
    if answer is None:
        raise HTTPException(404, "Chunk not tracked by global deduplication")
    return Response(answer, media_type="application/octet-stream")


# -- downloads ---------------------------------------------------------------------------------


class XorbResponse(FileResponse):
    """Xorb bytes in 1 MiB reads: Starlette's 64 KiB default costs one thread hop per read, which
    a 64 MiB xorb range pays a thousand times over."""

    chunk_size = 1024 * 1024


def _signature(xorb_hash: str, expires: int) -> str:
    return hmac.new(_SECRET, f"{xorb_hash}:{expires}".encode(), hashlib.sha256).hexdigest()


def _xorb_url(request: Request, xorb_hash: str) -> str:
    expires = int(time.time()) + URL_TTL_S
    return f"{cas_url(request)}/xorbs/default/{xorb_hash}?expires={expires}&sig={_signature(xorb_hash, expires)}"


def _file_range(request: Request, size: int) -> tuple[int, int | None]:
    """The `Range: bytes=a-b` of a reconstruction request (b inclusive); 416 past the end."""
    header = request.headers.get("range")
    if header is None:
        return 0, None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        raise HTTPException(400, f"Unsupported Range header: {header[:80]!r}")
    first, last = int(match[1]), int(match[2]) if match[2] else None
    if first >= size or (last is not None and last < first):
        raise HTTPException(416, f"Range {header} is not satisfiable for a file of {size} bytes")
    return first, last


def _reconstruction(request: Request) -> tuple[int, list[Piece]]:
    _grant(request, write=False)
    store, file_hash = xet(request), _hash_param(request, "file_id")
    size = store.file_size(file_hash)
    if size is None:
        raise HTTPException(404, "File not found")
    first, last = _file_range(request, size)
    pieces = list(store.pieces(file_hash, first, last))
    return (first - pieces[0].file_offset if pieces else 0), pieces


def _term_json(piece: Piece) -> dict:
    term = piece.term
    return {"hash": term.xorb, "unpacked_length": term.length, "range": {"start": term.start, "end": term.end}}


def _fetch_info(request: Request, pieces: list[Piece], fetch: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The v1 `fetch_info`: for each xorb, a signed URL and byte range per chunk range the terms use."""
    for piece in pieces:
        entry = {
            "range": {"start": piece.term.start, "end": piece.term.end},
            "url": _xorb_url(request, piece.term.xorb),
            "url_range": {"start": piece.first_byte, "end": piece.last_byte},
        }
        known = fetch.setdefault(piece.term.xorb, [])
        if all(e["range"] != entry["range"] for e in known):
            known.append(entry)
    return fetch


async def reconstruction_v1(request: Request) -> JSONResponse:
    offset, pieces = await run_in_threadpool(_reconstruction, request)
    terms = [_term_json(p) for p in pieces]
    return JSONResponse(
        {"offset_into_first_range": offset, "terms": terms, "fetch_info": _fetch_info(request, pieces, {})}
    )


async def batch_reconstruction(request: Request) -> JSONResponse:
    """Several whole files at once: `?file_id=...&file_id=...` (hf_xet) or a JSON list of keys (the spec)."""
    _grant(request, write=False)
    if request.method == "POST":
        try:
            keys = json.loads(await _body(request, 1024 * 1024))
            file_ids = [str(key["hash"]) for key in keys]
        except (ValueError, TypeError, KeyError) as err:
            raise HTTPException(400, f"Expected a JSON list of {{prefix, hash}}: {err}") from err
    else:
        file_ids = request.query_params.getlist("file_id")
    files, fetch = {}, {}
    for file_id in dict.fromkeys(file_ids):
        if xet(request).file_size(file_id) is None:
            raise HTTPException(404, f"File not found: {file_id[:80]}")
        pieces = await run_in_threadpool(lambda f=file_id: list(xet(request).pieces(f)))
        files[file_id] = [_term_json(p) for p in pieces]
        _fetch_info(request, pieces, fetch)
    return JSONResponse({"files": files, "fetch_info": fetch})


async def reconstruction_v2(request: Request) -> JSONResponse:
    offset, pieces = await run_in_threadpool(_reconstruction, request)
    xorbs: dict[str, list[dict]] = {}
    for piece in pieces:
        chunks = {"start": piece.term.start, "end": piece.term.end}
        span = {"chunks": chunks, "bytes": {"start": piece.first_byte, "end": piece.last_byte}}
        xorbs.setdefault(piece.term.xorb, []).append({"url": _xorb_url(request, piece.term.xorb), "ranges": [span]})
    terms = [_term_json(p) for p in pieces]
    return JSONResponse({"offset_into_first_range": offset, "terms": terms, "xorbs": xorbs})


async def head_file(request: Request) -> Response:
    _grant(request, write=False)
    size = xet(request).file_size(_hash_param(request, "file_id"))
    if size is None:
        raise HTTPException(404, "File not found")
    return Response(headers={"Content-Length": str(size)})


async def get_xorb(request: Request) -> Response:
    """Xorb bytes (honouring Range) for a URL a reconstruction answer signed."""
    xorb_hash = _hash_param(request, "hash")
    expires = request.query_params.get("expires", "")
    signature = request.query_params.get("sig", "")
    valid = expires.isdigit() and hmac.compare_digest(signature, _signature(xorb_hash, int(expires)))
    if not valid or int(expires) < time.time():
        raise HTTPException(403, "Invalid or expired xorb URL signature")
    if not xet(request).has_xorb(xorb_hash):
        raise HTTPException(404, "Xorb not found")
    return XorbResponse(xet(request).xorb_path(xorb_hash), media_type="application/octet-stream")


ROUTES: list[Route] = [
    Route(CAS_PREFIX + "/v1/xorbs/{prefix}/{hash}", upload_xorb, methods=["POST"]),
    Route(CAS_PREFIX + "/v1/xorbs/{prefix}/{hash}", head_xorb, methods=["HEAD"]),
    Route(CAS_PREFIX + "/v1/shards", upload_shard, methods=["POST"]),
    Route(CAS_PREFIX + "/v1/chunks/{prefix}/{hash}", dedupe_chunk, methods=["GET"]),
    Route(CAS_PREFIX + "/v1/reconstructions", batch_reconstruction, methods=["GET", "POST"]),
    Route(CAS_PREFIX + "/v1/reconstructions/{file_id}", reconstruction_v1, methods=["GET"]),
    Route(CAS_PREFIX + "/v2/reconstructions/{file_id}", reconstruction_v2, methods=["GET"]),
    Route(CAS_PREFIX + "/v1/files/{file_id}", head_file, methods=["HEAD"]),
    Route(CAS_PREFIX + "/xorbs/default/{hash}", get_xorb, methods=["GET", "HEAD"]),
]

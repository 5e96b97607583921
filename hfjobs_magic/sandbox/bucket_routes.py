"""HF buckets over HTTP, as huggingface_hub 2.4 calls them (`HfApi.*bucket*`, `hf buckets`).

Control plane under `/api/buckets/{ns}/{name}`, file listing (tree, paths-info),
NDJSON batches of add/copy/delete whose bytes come from the Xet store, Xet
tokens, and `/buckets/{ns}/{name}/resolve/{path}` with the Xet headers the
client needs to download. A bucket is private to its namespace like a repo;
every 404 carries `X-Error-Code: RepoNotFound`, which the client needs to raise
`BucketNotFoundError` (and `sync_bucket` to treat a new bucket as empty).
"""

from __future__ import annotations

import json
import re

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from hfjobs_magic.sandbox.accounts import Identity, caller, require_caller, require_writer
from hfjobs_magic.sandbox.buckets import Bucket, BucketStore
from hfjobs_magic.sandbox.hub_access import hub_error, json_body
from hfjobs_magic.sandbox.hub_routes import page_of
from hfjobs_magic.sandbox.repos import BadPath, RepoExists
from hfjobs_magic.sandbox.xet import XetStore, cas_url

TREE_PAGE, LIST_PAGE = 1000, 100
MAX_BATCH_LINES = 10_000  # the client sends at most 1000 operations per request
_XET_HASH = re.compile(r"[0-9a-f]{64}")


def _xet(request: Request) -> XetStore:
    return request.app.state.sandbox.xet


def bucket_not_found(status: int = 404) -> HTTPException:
    """404, or 401 to a caller without a token (as the Hub answers, so anonymity reveals nothing)."""
    return hub_error(status, "Bucket not found", "RepoNotFound")


def _store(request: Request) -> BucketStore:
    return request.app.state.sandbox.buckets


def _namespace(request: Request) -> str:
    """The namespace in the path; `me` is the caller's own."""
    namespace = request.path_params["ns"]
    return require_caller(request).name if namespace == "me" else namespace


def bucket_id(request: Request) -> str:
    return f"{_namespace(request)}/{request.path_params['name']}"


def visible(bucket: Bucket | None, identity: Identity | None) -> bool:
    if bucket is None:
        return False
    return not bucket.private or (identity is not None and identity.member_of(bucket.namespace))


def readable_bucket(request: Request) -> Bucket:
    """The bucket, if the caller may see it; a private bucket is 404 to outsiders, as on the Hub."""
    bucket, identity = _store(request).get(bucket_id(request)), caller(request)
    if not visible(bucket, identity):
        raise bucket_not_found(401 if identity is None else 404)
    assert bucket is not None
    return bucket


def writable_bucket(request: Request) -> Bucket:
    """401 without a token, 404 for a bucket the caller cannot see, 403 without write access."""
    require_caller(request)
    bucket = readable_bucket(request)
    require_writer(request, bucket.namespace)
    return bucket


def _url(request: Request, bid: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/buckets/{bid}"


def bucket_info(bucket: Bucket) -> dict:
    size, total = bucket.usage()
    return {"id": bucket.bucket_id, "private": bucket.private, "createdAt": bucket.meta["createdAt"],
            "size": size, "totalFiles": total}


# -- control plane ------------------------------------------------------------------------------


async def create_bucket(request: Request) -> JSONResponse:
    bid = bucket_id(request)
    identity = require_writer(request, bid.split("/")[0])
    try:
        validate_repo_id(bid)
    except HFValidationError as err:
        raise HTTPException(400, f"Invalid bucket name: {err}") from err
    body = await json_body(request)
    private = body.get("visibility") == "private" or body.get("private") is True
    try:
        _store(request).create(bid, private=private, author=identity.name)
    except RepoExists as err:
        return JSONResponse({"error": str(err), "url": _url(request, bid)}, status_code=409,
                            headers={"X-Error-Message": str(err)})
    return JSONResponse({"url": _url(request, bid)})


async def get_bucket(request: Request) -> JSONResponse:
    bucket = readable_bucket(request)
    return JSONResponse(await run_in_threadpool(bucket_info, bucket))


async def list_buckets(request: Request) -> JSONResponse:
    """The namespace's buckets; a namespace nobody has is 404 (so is a bucket id without namespace)."""
    namespace, identity = _namespace(request), caller(request)
    if namespace not in request.app.state.sandbox.accounts.namespaces():
        raise HTTPException(404, f"Namespace '{namespace}' not found")
    search = (request.query_params.get("search") or "").lower()
    buckets = [b for b in _store(request).all()
               if b.namespace == namespace and search in b.bucket_id.lower() and visible(b, identity)]
    buckets.sort(key=lambda b: b.meta["createdAt"], reverse=True)
    page, headers = page_of(request, buckets, LIST_PAGE, by_page=False)
    return JSONResponse(await run_in_threadpool(lambda: [bucket_info(b) for b in page]), headers=headers)


async def delete_bucket(request: Request) -> Response:
    bucket = writable_bucket(request)
    await run_in_threadpool(_store(request).delete, bucket.bucket_id)
    return Response(status_code=200)


async def bucket_settings(request: Request) -> JSONResponse:
    bucket = writable_bucket(request)
    body = await json_body(request)
    if "private" in body or "visibility" in body:
        private = body.get("visibility") == "private" if "visibility" in body else body.get("private") is True
        _store(request).set_private(bucket, private)
    return JSONResponse({"private": bucket.private})


async def no_namespace(request: Request) -> Response:
    """`DELETE /api/buckets/{name}`: a bucket id without its namespace names no bucket."""
    raise bucket_not_found()


def move_bucket(request: Request, source: str, dest: str) -> JSONResponse:
    """`POST /api/repos/move` with type "bucket" (routed by `ref_routes.move_repo`)."""
    bucket = _store(request).get(source)
    if not visible(bucket, require_caller(request)):
        raise bucket_not_found()
    assert bucket is not None
    require_writer(request, bucket.namespace)
    require_writer(request, dest.split("/")[0])
    try:
        _store(request).move(bucket, dest)
    except RepoExists as err:
        raise HTTPException(409, f"A bucket called {dest} already exists") from err
    return JSONResponse({"url": _url(request, dest)})


# -- listing ----------------------------------------------------------------------------------


def tree_entries(request: Request, bucket: Bucket, prefix: str, recursive: bool) -> list[dict]:
    """Files (with their Xet hash) and folders at or under `prefix`; only the first level unless recursive."""
    files = bucket.entries(_xet(request), prefix)
    base = f"{prefix}/" if prefix else ""
    folders: dict[str, str] = {}  # folder -> its newest file's upload date
    for entry in files:
        below = entry.path[len(base):].split("/")[:-1] if entry.path.startswith(base) else []
        for depth in range(1, len(below) + 1 if recursive else min(len(below), 1) + 1):
            folder = base + "/".join(below[:depth])
            folders[folder] = max(folders.get(folder, ""), entry.uploaded_at)
    if not recursive:
        files = [e for e in files if not e.path.startswith(base) or "/" not in e.path[len(base):]]
    listing = [{"type": "directory", "path": p, "uploadedAt": at} for p, at in folders.items()]
    return sorted(listing + [e.to_api() for e in files], key=lambda e: e["path"])


async def list_tree(request: Request) -> JSONResponse:
    bucket = readable_bucket(request)
    prefix = request.path_params.get("prefix", "").strip("/")
    asked = request.query_params.get("recursive")
    recursive = asked is None or asked.lower() in ("1", "true")
    entries = await run_in_threadpool(tree_entries, request, bucket, prefix, recursive)
    if asked is None:  # the Hub's default: every file under the prefix, and no folders
        entries = [e for e in entries if e["type"] == "file"]
    page, headers = page_of(request, entries, TREE_PAGE, by_page=False)
    return JSONResponse(page, headers=headers)


async def paths_info(request: Request) -> JSONResponse:
    bucket = readable_bucket(request)
    paths = (await json_body(request)).get("paths")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise HTTPException(400, "'paths' must be a list of strings")
    xet = _xet(request)

    def found() -> list[dict]:
        return [e.to_api() for p in dict.fromkeys(paths) if (e := bucket.entry(xet, p)) is not None]

    return JSONResponse(await run_in_threadpool(found))


# -- writing ------------------------------------------------------------------------------------


def _operations(body: bytes) -> list[dict]:
    lines = [line for line in body.splitlines() if line.strip()]
    if len(lines) > MAX_BATCH_LINES:
        raise HTTPException(413, f"Too many operations in one batch: {len(lines)} > {MAX_BATCH_LINES}")
    try:
        ops = [json.loads(line) for line in lines]
    except ValueError as err:
        raise HTTPException(400, f"Malformed NDJSON line: {err}") from err
    if not all(isinstance(op, dict) and isinstance(op.get("path"), str) for op in ops):
        raise HTTPException(400, "Every operation must be a JSON object with a string 'path'")
    return ops


def _copy_source(request: Request, op: dict) -> None:
    """A copy reads another bucket: the caller must see it, and it must hold that Xet hash."""
    if op.get("sourceRepoType") != "bucket":
        raise ValueError("the sandbox copies files between buckets only")
    source = _store(request).get(str(op.get("sourceRepoId")))
    if source is None or not visible(source, caller(request)) or not source.holds(op["xetHash"]):
        raise ValueError(f"no file with this xetHash in bucket '{op.get('sourceRepoId')}'")


def apply_operation(request: Request, bucket: Bucket, op: dict) -> None:
    """One addFile, copyFile or deleteFile; ValueError/KeyError/BadPath say why it failed."""
    kind = op.get("type")
    if kind == "deleteFile":
        bucket.delete(op["path"])
        return
    if kind not in ("addFile", "copyFile"):
        raise ValueError(f"unknown operation type {kind!r}")
    if not isinstance(op.get("xetHash"), str) or not _XET_HASH.fullmatch(op["xetHash"]):
        raise ValueError("'xetHash' must be 64 hex characters")
    if kind == "copyFile":
        _copy_source(request, op)
    mtime = op.get("mtime")
    if not isinstance(mtime, int) or isinstance(mtime, bool) or mtime < 0:
        raise ValueError("'mtime' must be epoch milliseconds")
    bucket.add(_xet(request), op["path"], op["xetHash"], mtime)


def apply_batch(request: Request, bucket: Bucket, ops: list[dict]) -> list[dict]:
    failed = []
    for op in ops:
        try:
            apply_operation(request, bucket, op)
        except (ValueError, KeyError, BadPath, OSError) as err:
            failed.append({"path": op["path"], "error": str(err).strip("'\"")})
    return failed


async def batch(request: Request) -> JSONResponse:
    bucket = writable_bucket(request)
    ops = _operations(await request.body())
    failed = await run_in_threadpool(apply_batch, request, bucket, ops)
    if not failed:
        return JSONResponse({})
    return JSONResponse({"failed": failed}, status_code=422 if len(failed) == len(ops) else 200)


# -- Xet tokens and downloads ---------------------------------------------------------------------


async def xet_token(request: Request) -> JSONResponse:
    write = request.url.path.endswith("/xet-write-token")
    bucket = writable_bucket(request) if write else readable_bucket(request)
    answer = _xet(request).token_answer(
        scope=f"bucket:{bucket.bucket_id}", write=write, cas_url=cas_url(request))
    return JSONResponse(answer)


async def resolve(request: Request) -> Response:
    """A file's Xet headers (HEAD) and its bytes (GET, Range too), for the client's Xet and fsspec reads."""
    bucket = readable_bucket(request)
    path = request.path_params["path"]
    entry = await run_in_threadpool(bucket.entry, _xet(request), path)
    if entry is None:
        raise hub_error(404, f"Entry not found: '{path}'", "EntryNotFound")
    refresh = f"{request.app.state.sandbox.endpoint or str(request.base_url).rstrip('/')}" \
              f"/api/buckets/{bucket.bucket_id}/xet-read-token"
    headers = {"X-Xet-Hash": entry.xet_hash, "X-Xet-Refresh-Route": refresh, "Link": f'<{refresh}>; rel="xet-auth"',
               "X-Linked-Size": str(entry.size), "ETag": f'"{entry.xet_hash}"'}
    return FileResponse(bucket.local_path(path), headers=headers, media_type="application/octet-stream")


_B = "/api/buckets/{ns}/{name}"

ROUTES: list[Route] = [
    Route("/api/buckets/{ns}", list_buckets, methods=["GET"]),
    Route("/api/buckets/{ns}", no_namespace, methods=["DELETE"]),
    Route(_B, create_bucket, methods=["POST"]),
    Route(_B, get_bucket, methods=["GET"]),
    Route(_B, delete_bucket, methods=["DELETE"]),
    Route(_B + "/settings", bucket_settings, methods=["PUT"]),
    Route(_B + "/tree", list_tree, methods=["GET"]),
    Route(_B + "/tree/{prefix:path}", list_tree, methods=["GET"]),
    Route(_B + "/paths-info", paths_info, methods=["POST"]),
    Route(_B + "/batch", batch, methods=["POST"]),
    Route(_B + "/xet-write-token", xet_token, methods=["GET"]),
    Route(_B + "/xet-read-token", xet_token, methods=["GET"]),
    Route("/buckets/{ns}/{name}/resolve/{path:path}", resolve, methods=["GET", "HEAD"]),
]

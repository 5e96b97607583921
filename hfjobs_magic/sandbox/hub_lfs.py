"""Git LFS over plain HTTP (batch, upload, verify), and a clear refusal of Xet.

Most clients never come here: the sandbox answers their preupload with
"regular" and they send contents inline. The `datasets` library cannot work
that way (it deletes each parquet shard right after its preupload, so the
shard must be uploaded then, as LFS), so it is answered "lfs" for the files
`.gitattributes` tracks. huggingface_hub then uploads through Xet when
`hf_xet` is installed, which the sandbox does not implement: such a client
needs `HF_HUB_DISABLE_XET=1` to fall back to this LFS protocol, and the
Xet token routes say so.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import unquote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from hfjobs_magic.sandbox.accounts import caller, require_caller, require_writer
from hfjobs_magic.sandbox.hub_access import KINDS, URL_PREFIX, Target, json_body, store, visible_repo
from hfjobs_magic.sandbox.repos import Repo

LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"
XET_REFUSAL = (
    "The sandbox does not implement Xet storage. Set HF_HUB_DISABLE_XET=1 in the client's environment"
    " so huggingface_hub uploads LFS files over plain HTTP"
)
_SECRET = secrets.token_bytes(32)  # signs upload URLs, which the client PUTs to without a token


def lfs_target(request: Request) -> Target:
    """`/{prefix}{ns}/{name}.git/info/lfs/...`, prefix "" for models."""
    seg = request.url.path.strip("/").split("/")
    at = next((i for i, part in enumerate(seg) if part.endswith(".git")), -1)
    if at == 2 and seg[0] in ("datasets", "spaces"):
        return Target(KINDS[seg[0]], f"{unquote(seg[1])}/{unquote(seg[2]).removesuffix('.git')}")
    if at != 1:
        raise HTTPException(404)  # the app names the unknown route
    return Target("model", f"{unquote(seg[0])}/{unquote(seg[1]).removesuffix('.git')}")


def _git_url(request: Request, target: Target) -> str:
    return f"{str(request.base_url).rstrip('/')}/{URL_PREFIX[target.repo_type]}{target.repo_id}.git/info/lfs"


def _signature(target: Target, oid: str, size: int) -> str:
    message = f"{target.repo_type}/{target.repo_id}/{oid}/{size}".encode()
    return hmac.new(_SECRET, message, hashlib.sha256).hexdigest()


def _object_url(request: Request, target: Target, oid: str, size: int) -> str:
    query = f"size={size}&sig={_signature(target, oid, size)}"
    return f"{_git_url(request, target)}/objects/{oid}?{query}"


def _batch_object(request: Request, target: Target, repo: Repo, item: object, upload: bool) -> dict:
    """One object of the batch answer: what to PUT (upload) or GET (download), or an error."""
    oid = item.get("oid") if isinstance(item, dict) else None
    size = item.get("size") if isinstance(item, dict) else None
    if not isinstance(oid, str) or len(oid) != 64 or not isinstance(size, int) or size < 0:
        return {"oid": str(oid), "size": 0, "error": {"code": 422, "message": "Need a sha256 'oid' and a 'size'"}}
    limit = request.app.state.sandbox.limits.max_file_bytes
    if size > limit:
        message = f"Object is {size} bytes, over the sandbox's limit of {limit} bytes per file"
        return {"oid": oid, "size": size, "error": {"code": 413, "message": message}}
    present = repo.lfs_size(oid) == size
    answer: dict = {"oid": oid, "size": size, "authenticated": True}
    href = _object_url(request, target, oid, size)
    if upload and not present:
        answer["actions"] = {"upload": {"href": href}, "verify": {"href": f"{_git_url(request, target)}/verify"}}
    elif not upload:
        if not present:
            return {"oid": oid, "size": size, "error": {"code": 404, "message": "Object does not exist"}}
        answer["actions"] = {"download": {"href": href}}
    return answer


async def batch(request: Request) -> JSONResponse:
    """The LFS batch API: uploads need write access, downloads read access."""
    target = lfs_target(request)
    body = await json_body(request)
    upload = body.get("operation") == "upload"
    identity = require_caller(request) if upload else caller(request)
    repo = visible_repo(request, target, identity)
    if upload:
        require_writer(request, repo.namespace)
    items = body.get("objects")
    if not isinstance(items, list):
        raise HTTPException(422, "Expected a list 'objects'")
    objects = [_batch_object(request, target, repo, item, upload) for item in items]
    return JSONResponse({"transfer": "basic", "objects": objects}, media_type=LFS_MEDIA_TYPE)


def _signed_object(request: Request) -> tuple[Repo, str, int]:
    """The repo, oid and size of a signed object URL; 403 when the signature does not match."""
    target, oid = lfs_target(request), request.path_params["oid"]
    size = request.query_params.get("size", "")
    signature = request.query_params.get("sig", "")
    if not size.isdigit() or not hmac.compare_digest(signature, _signature(target, oid, int(size))):
        raise HTTPException(403, "Invalid or missing LFS object signature")
    repo = store(request).get(target.repo_type, target.repo_id)
    if repo is None:
        raise HTTPException(404, "Repository not found", headers={"X-Error-Code": "RepoNotFound"})
    return repo, oid, int(size)


async def upload_object(request: Request) -> Response:
    """Receive one object's bytes, check them against oid and size, then keep them."""
    repo, oid, size = _signed_object(request)
    incoming = repo.folder / "lfs"
    incoming.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=incoming, prefix=".incoming-")
    try:
        digest, received = await _receive(request, fd, size)
        if received != size or digest != oid:
            raise HTTPException(400, f"Uploaded content does not match: got {received} bytes, sha256 {digest}")
        repo.add_lfs(Path(tmp), oid)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return Response(status_code=200)


async def _receive(request: Request, fd: int, size: int) -> tuple[str, int]:
    digest, received = hashlib.sha256(), 0
    with os.fdopen(fd, "wb") as handle:
        async for chunk in request.stream():
            received += len(chunk)
            if received > size:
                raise HTTPException(400, f"Upload is larger than the announced {size} bytes")
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest(), received


async def download_object(request: Request) -> Response:
    repo, oid, size = _signed_object(request)
    if repo.lfs_size(oid) != size:
        raise HTTPException(404, "Object does not exist")
    return FileResponse(repo.lfs_path(oid), media_type="application/octet-stream")


async def verify(request: Request) -> JSONResponse:
    target = lfs_target(request)
    repo = visible_repo(request, target, require_caller(request))
    body = await json_body(request)
    if repo.lfs_size(str(body.get("oid", ""))) != body.get("size"):
        raise HTTPException(404, "Object does not exist or has another size")
    return JSONResponse({"oid": body["oid"], "size": body["size"]})


async def refuse_xet(request: Request) -> Response:
    raise HTTPException(501, XET_REFUSAL)


_GIT = "/{ns}/{name}.git/info/lfs"
_TYPED_GIT = "/{kind}/{ns}/{name}.git/info/lfs"

ROUTES: list[Route] = [
    *(
        route
        for prefix in (_TYPED_GIT, _GIT)
        for route in (
            Route(prefix + "/objects/batch", batch, methods=["POST"]),
            Route(prefix + "/verify", verify, methods=["POST"]),
            Route(prefix + "/objects/{oid}", upload_object, methods=["PUT"]),
            Route(prefix + "/objects/{oid}", download_object, methods=["GET"]),
        )
    ),
    Route("/api/{kind}/{ns}/{name}/xet-write-token/{rev:path}", refuse_xet, methods=["GET", "POST"]),
    Route("/api/{kind}/{ns}/{name}/xet-read-token/{rev:path}", refuse_xet, methods=["GET", "POST"]),
]

"""Git LFS over plain HTTP (batch, upload, verify), and the Xet token routes of repos.

Files the preupload answers "lfs" reach the sandbox one of two ways. By default huggingface_hub
uploads them through Xet: it asks `xet-write-token` for a CAS token and URL, sends xorbs and a
shard to the sandbox's CAS (`sandbox.xet`), then commits the file by its sha256, and the commit
lands the bytes in the repo (`land_xet_objects`). With `HF_HUB_DISABLE_XET=1` it uses the LFS
batch API below instead. Either way the repo ends up with the same `lfs/` object.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from hfjobs_magic.sandbox.accounts import caller, require_caller, require_writer
from hfjobs_magic.sandbox.hub_access import (
    KINDS,
    URL_PREFIX,
    Target,
    api_target,
    committer,
    json_body,
    store,
    visible_repo,
)
from hfjobs_magic.sandbox.repos import Repo
from hfjobs_magic.sandbox.state import SandboxState
from hfjobs_magic.sandbox.xet import cas_url

LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"
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


def xet_scope(repo: Repo) -> str:
    """What a repo's CAS tokens are issued for, and so which uploads its commits may land."""
    return f"{repo.repo_type}:{repo.repo_id}"


async def xet_token(request: Request) -> JSONResponse:
    """A CAS token: write needs write access to the repo (or `create_pr`), read needs only to see it."""
    target = api_target(request)
    write = request.url.path.rstrip("/").split("/")[5] == "xet-write-token"
    repo = committer(request, target) if write else visible_repo(request, target, caller(request))
    answer = request.app.state.sandbox.xet.token_answer(scope=xet_scope(repo), write=write, cas_url=cas_url(request))
    headers = {
        "X-Xet-Access-Token": answer["accessToken"],
        "X-Xet-Token-Expiration": str(answer["exp"]),
        "X-Xet-Cas-Url": answer["casUrl"],
        "X-Xet-Endpoint": answer["casUrl"],
    }
    return JSONResponse(answer, headers=headers)


def land_xet_objects(state: SandboxState, repo: Repo, sha256s: list[str]) -> None:
    """Give the repo the bytes of every LFS oid it lacks that was uploaded through Xet.

    Blocking (reconstructs whole files): call it in a thread. An oid the CAS cannot vouch for (not
    uploaded with a token for this repo, or not the sha256 the upload claimed) is left missing, and
    the commit then refuses it as it refuses an LFS object never uploaded.
    """
    for sha256 in dict.fromkeys(sha256s):
        if repo.lfs_size(sha256) is not None:
            continue
        incoming = repo.folder / "lfs"
        incoming.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=incoming, prefix=".xet-")
        os.close(fd)
        try:
            if state.xet.land_sha256(sha256, Path(tmp), xet_scope(repo)):
                repo.add_lfs(Path(tmp), sha256)
        finally:
            Path(tmp).unlink(missing_ok=True)


def xet_headers(request: Request, repo: Repo, rev: str, sha256: str) -> dict[str, str]:
    """What the Hub's resolve says of a file stored in Xet, so `hf_hub_download` fetches it from the CAS."""
    file_hash = request.app.state.sandbox.xet.file_for_sha256(sha256)
    if file_hash is None:
        return {}
    base = str(request.base_url).rstrip("/")
    route = f"{base}/api/{repo.repo_type}s/{repo.repo_id}/xet-read-token/{quote(rev, safe='')}"
    return {"X-Xet-Hash": file_hash, "X-Xet-Refresh-Route": route, "Link": f'<{route}>; rel="xet-auth"'}


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
    Route("/api/{kind}/{ns}/{name}/xet-write-token/{rev:path}", xet_token, methods=["GET", "POST"]),
    Route("/api/{kind}/{ns}/{name}/xet-read-token/{rev:path}", xet_token, methods=["GET", "POST"]),
]

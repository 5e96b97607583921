"""The Hub half of the sandbox: repos, commits, files, as huggingface_hub 2.4 calls them.

Every endpoint is a few lines: find the target repo and revision, check who
may see or change it, hand the work to the `RepoStore`, shape the answer with
`hub_shapes`. Errors carry the `X-Error-Code` the Hub sets, because that header
is what `hf_raise_for_status` turns into RepositoryNotFoundError,
RevisionNotFoundError or RemoteEntryNotFoundError. The LFS and Xet routes
live in `hub_lfs`, the JSON shapes in `hub_shapes`.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from urllib.parse import parse_qs

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from hfjobs_magic.sandbox import hub_lfs
from hfjobs_magic.sandbox import hub_shapes as shapes
from hfjobs_magic.sandbox.accounts import Identity, caller, require_caller, require_writer
from hfjobs_magic.sandbox.hub_access import (
    KINDS,
    Target,
    api_target,
    check_gate,
    commit_at,
    committer,
    flag,
    hub_error,
    json_body,
    readable,
    repo_not_found,
    repo_url,
    resolve_target,
    store,
    writable,
)
from hfjobs_magic.sandbox.refs import pr_number
from hfjobs_magic.sandbox.repos import (
    REPO_TYPES,
    BadPath,
    Commit,
    EntryMissing,
    MissingObject,
    ParentMismatch,
    PutLfs,
    Repo,
    RepoExists,
    check_path,
    lfs_tracked,
)

TREE_PAGE, TREE_PAGE_EXPANDED, COMMITS_PAGE, LIST_PAGE, MAX_PAGE = 1000, 50, 50, 100, 1000


# -- pages ---------------------------------------------------------------------------------------


def _int_param(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise HTTPException(400, f"Query parameter '{name}' must be a non-negative integer")
    return min(int(raw), maximum) if maximum else int(raw)


def page_of(request: Request, items: list, default_limit: int, *, by_page: bool) -> tuple[list, dict[str, str]]:
    """One page and its headers: `Link: <next>; rel="next"`, which the client's `_paginate_pages` follows.

    Commits page by number (`p`), like the Hub; trees and repo lists by an offset `cursor`.
    """
    limit = max(_int_param(request, "limit", default_limit, MAX_PAGE), 1)
    start = _int_param(request, "p", 0) * limit if by_page else _int_param(request, "cursor", 0)
    headers = {}
    if start + limit < len(items):
        following = {"p": start // limit + 1} if by_page else {"cursor": start + limit}
        headers["Link"] = f'<{request.url.include_query_params(**following)}>; rel="next"'
    return items[start : start + limit], headers


# -- endpoints: account and repos ---------------------------------------------------------------


async def whoami(request: Request) -> JSONResponse:
    identity = require_caller(request)
    return JSONResponse(request.app.state.sandbox.accounts.whoami(identity))


def _new_repo_id(body: dict, identity: Identity) -> tuple[str, str]:
    """(repo_type, repo_id) from a create/delete body: name + organization, or name "ns/name"."""
    name, org = body.get("name"), body.get("organization")
    if isinstance(name, str) and "/" in name and not org:
        org, name = name.split("/", 1)
    repo_type = body.get("type") or "model"
    if repo_type not in REPO_TYPES:
        raise HTTPException(400, f"Invalid repo type '{repo_type}': use one of {', '.join(REPO_TYPES)}")
    repo_id = f"{org or identity.name}/{name}"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HTTPException(400, f"Invalid repo name: {err}") from err
    return repo_type, repo_id


async def create_repo(request: Request) -> JSONResponse:
    body = await json_body(request)
    repo_type, repo_id = _new_repo_id(body, require_caller(request))
    identity = require_writer(request, repo_id.split("/")[0])
    private = flag(body.get("private")) or body.get("visibility") == "private"
    extra = {"sdk": body["sdk"]} if repo_type == "space" and body.get("sdk") else {}
    url = repo_url(request, repo_type, repo_id)
    try:
        store(request).create(repo_type, repo_id, author=identity.name, private=private, **extra)
    except RepoExists as err:
        return JSONResponse({"error": str(err), "url": url}, status_code=409, headers={"X-Error-Message": str(err)})
    return JSONResponse({"url": url, "name": repo_id, "id": repo_id})


async def delete_repo(request: Request) -> Response:
    body = await json_body(request)
    repo_type, repo_id = _new_repo_id(body, require_caller(request))
    repo = writable(request, Target(repo_type, repo_id))
    store(request).delete(repo.repo_type, repo.repo_id)
    return Response(status_code=200)


async def repo_settings(request: Request) -> JSONResponse:
    repo = writable(request, api_target(request))
    body = await json_body(request)
    if "visibility" in body or "private" in body:
        private = body.get("visibility") == "private" if "visibility" in body else flag(body["private"])
        store(request).set_private(repo, private)
    if "gated" in body:
        gated = body["gated"]
        if gated not in (False, "auto", "manual"):
            raise HTTPException(400, "gated must be false, 'auto' or 'manual'")
        store(request).set_meta(repo, gated=gated)
    return JSONResponse({"private": repo.private, "gated": repo.meta.get("gated", False)})


async def repo_info(request: Request) -> JSONResponse:
    target = api_target(request, whole_rev="revision" in request.path_params)
    repo, commit = readable(request, target)
    expand = request.query_params.getlist("expand") or request.query_params.getlist("expand[]")
    blobs = flag(request.query_params.get("blobs"))
    return JSONResponse(shapes.repo_info(repo, commit, blobs=blobs, expand=expand))


async def list_repos(request: Request) -> JSONResponse:
    """`list_models` / `list_datasets` / `list_spaces`: the repos the caller can see, newest first."""
    kind = request.path_params["kind"]
    if kind not in KINDS:
        raise HTTPException(404)  # the app names the unknown route
    identity, query = caller(request), request.query_params
    author, search = query.get("author"), (query.get("search") or "").lower()
    repos = [
        repo
        for repo in store(request).all()
        if repo.repo_type == KINDS[kind]
        and (author is None or repo.namespace == author)
        and search in repo.repo_id.lower()
        and (not repo.private or (identity is not None and identity.member_of(repo.namespace)))
    ]
    repos.sort(key=lambda repo: repo.head.date, reverse=True)
    full, expand = flag(query.get("full")), query.getlist("expand") or query.getlist("expand[]")
    items = [shapes.repo_info(r, r.head, expand=expand) for r in repos]
    if not full and not expand:
        items = [{k: v for k, v in item.items() if k not in ("siblings", "cardData")} for item in items]
    page, headers = page_of(request, items, LIST_PAGE, by_page=False)
    return JSONResponse(page, headers=headers)


async def auth_check(request: Request) -> Response:
    """200 when the caller may read (or, with `/write`, write) the repo; 404 or 403 otherwise."""
    target = api_target(request)
    if request.url.path.endswith("/write"):
        writable(request, target)
    else:
        repo, _ = readable(request, target)
        check_gate(request, repo)
    return JSONResponse({"ok": True})


async def validate_yaml(request: Request) -> JSONResponse:
    content = (await json_body(request)).get("content")
    if not isinstance(content, str):
        raise HTTPException(400, "Expected a JSON body with a string 'content'")
    errors, warnings = shapes.card_problems(content)
    if errors:
        body = {"error": errors[0], "errors": [{"message": e} for e in errors], "warnings": []}
        return JSONResponse(body, status_code=400)
    return JSONResponse({"errors": [], "warnings": [{"message": w} for w in warnings]})


# -- endpoints: uploads and commits -------------------------------------------------------------


def _checked_path(path: object) -> str:
    """The path, or 422 as the Hub answers a path it will not store (`..`, `\\`, absolute)."""
    try:
        return check_path(path)  # type: ignore[arg-type]
    except BadPath as err:
        raise HTTPException(422, str(err)) from err


LFS_MIN_BYTES = 10 * 1024 * 1024  # the Hub puts files this large in LFS whatever .gitattributes says


def _upload_mode(repo: Repo, commit: Commit, path: str, item: dict) -> str:
    """ "lfs" where the Hub says so: tracked by `.gitattributes`, 10 MB or more, or binary.

    huggingface_hub then uploads the file through Xet (or the LFS batch API with Xet disabled)
    and commits it by sha256; everything else comes inline in the commit.
    """
    size, attributes = item.get("size"), commit.tree.get(".gitattributes")
    if isinstance(size, int) and size >= LFS_MIN_BYTES:
        return "lfs"
    if attributes is not None and lfs_tracked(repo.read(attributes), path):
        return "lfs"
    try:
        sample = base64.b64decode(str(item.get("sample", "")), validate=False)
    except ValueError:
        sample = b""
    return "lfs" if b"\x00" in sample else "regular"


async def preupload(request: Request) -> JSONResponse:
    target = api_target(request)
    repo = committer(request, target)
    commit = commit_at(repo, target.rev)
    body = await json_body(request)
    files, ignore = body.get("files"), _gitignore(repo, commit, body.get("gitIgnore"))
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise HTTPException(400, "Expected a JSON body with a list 'files' of objects")
    limit = request.app.state.sandbox.limits.max_file_bytes
    answer = []
    for item in files:
        path, size = _checked_path(item.get("path")), item.get("size")
        if isinstance(size, int) and size > limit:
            raise HTTPException(413, str(shapes.too_large(path, size, limit)))
        mode, remote = _upload_mode(repo, commit, path, item), commit.tree.get(path)
        oid = remote and (remote.sha256 if mode == "lfs" else remote.oid)
        answer.append({"path": path, "uploadMode": mode, "shouldIgnore": shapes.ignored(ignore, path), "oid": oid})
    return JSONResponse({"files": answer, "commitOid": commit.oid})


def _gitignore(repo: Repo, commit: Commit, sent: object) -> str:
    """The `.gitignore` that decides `shouldIgnore`: the one sent with the files, else the repo's."""
    if isinstance(sent, str):
        return sent
    blob = commit.tree.get(".gitignore")
    return repo.read(blob).decode("utf-8", errors="replace") if blob is not None else ""


def _commit_branch(repo: Repo, target: Target) -> str:
    """The branch (or `refs/pr/N`) a commit to `target.rev` moves; a tag or commit id moves none (404)."""
    branch = repo.refs.branch_of(target.rev)
    if branch is None:
        raise hub_error(404, f"Invalid rev id: {target.rev} is not a branch", "RevisionNotFound")
    return branch


def _commit_answer(request: Request, repo: Repo, commit: Commit, pull: int | None) -> dict:
    base = repo_url(request, repo.repo_type, repo.repo_id)
    return {"success": True, "commitOid": commit.oid, "commitUrl": f"{base}/commit/{commit.oid}",
            "commitMessage": commit.title, "hookOutput": "",
            "pullRequestUrl": f"{base}/discussions/{pull}" if pull else None}


async def create_commit(request: Request) -> JSONResponse:
    """A commit to a branch or `refs/pr/N`; with `create_pr`, to a new pull request against the branch."""
    target = api_target(request, whole_rev=True)
    repo, create_pr = committer(request, target), flag(request.query_params.get("create_pr"))
    branch, identity = _commit_branch(repo, target), require_caller(request)
    try:
        parsed = shapes.parse_commit(await request.body(), request.app.state.sandbox.limits.max_file_bytes)
        oids = [op.sha256 for op in parsed.operations if isinstance(op, PutLfs)]
        await run_in_threadpool(hub_lfs.land_xet_objects, request.app.state.sandbox, repo, oids)
        commit, pull = await run_in_threadpool(
            _land_commit, repo, parsed, branch, identity.name, create_pr
        )
    except shapes.BadBody as err:
        raise HTTPException(err.status, str(err)) from err
    except BadPath as err:
        raise HTTPException(400, str(err)) from err
    except EntryMissing as err:
        raise hub_error(404, str(err), "EntryNotFound") from err
    except MissingObject as err:
        raise HTTPException(422, str(err)) from err
    except ParentMismatch as err:
        raise HTTPException(412, str(err)) from err
    return JSONResponse(_commit_answer(request, repo, commit, pull))


def _land_commit(repo: Repo, parsed: shapes.CommitRequest, branch: str, author: str,
                 create_pr: bool) -> tuple[Commit, int | None]:
    """Commit, opening a PR first when asked; a commit to `refs/pr/N` is logged on discussion N."""
    kwargs = {"title": parsed.summary, "message": parsed.description, "author": author, "parent": parsed.parent}
    if not create_pr:
        commit = repo.commit(parsed.operations, branch=branch, **kwargs)
        if (num := pr_number(branch)) is not None:
            repo.discussions.add_commit(num, oid=commit.oid, title=commit.title, author=author, date=commit.date)
        return commit, num
    with repo.discussions.lock:
        num = repo.discussions.next_number(repo.refs.pulls)
        commit = repo.commit(parsed.operations, branch=branch, open_pull=num, **kwargs)
        repo.discussions.open(num, title=parsed.summary, author=author, date=commit.date, pull_request=True,
                              base=branch, start=commit.parent, description=parsed.description)
        repo.discussions.add_commit(num, oid=commit.oid, title=commit.title, author=author, date=commit.date)
    return commit, num


# -- endpoints: reading history, trees and files --------------------------------------------------


async def list_commits(request: Request) -> JSONResponse:
    repo, commit = readable(request, api_target(request, whole_rev=True))
    formatted = "formatted" in request.query_params.getlist("expand[]")
    items = [shapes.commit_entry(c, formatted) for c in repo.history(commit)]
    page, headers = page_of(request, items, COMMITS_PAGE, by_page=True)
    return JSONResponse(page, headers=headers)


async def list_tree(request: Request) -> JSONResponse:
    target = api_target(request)
    repo, commit = readable(request, target)
    entries = shapes.tree_listing(commit.tree, target.path.strip("/"), flag(request.query_params.get("recursive")))
    if entries is None:
        raise hub_error(404, f"Entry not found: '{target.path}' is no folder", "EntryNotFound")
    expand = flag(request.query_params.get("expand"))
    page, headers = page_of(request, entries, TREE_PAGE_EXPANDED if expand else TREE_PAGE, by_page=False)
    page = _with_xet_hashes(request, page)
    return JSONResponse(shapes.add_last_commits(repo, commit, page) if expand else page, headers=headers)


def _with_xet_hashes(request: Request, entries: list[dict]) -> list[dict]:
    """`xetHash` on files stored in Xet, as the Hub lists them: clients then fetch them from the CAS
    without a HEAD on `/resolve/` first."""
    xet = request.app.state.sandbox.xet
    for entry in entries:
        if "lfs" in entry and (file_hash := xet.file_for_sha256(entry["lfs"]["oid"])) is not None:
            entry["xetHash"] = file_hash
    return entries


async def _paths_request(request: Request) -> tuple[list[str], bool]:
    """`paths-info` takes form data (`paths=a&paths=b&expand=True`) from the client, JSON from others."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        body = json.loads(raw or b"{}")
        paths, expand = body.get("paths", []), body.get("expand", False)
    else:
        form = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
        paths, expand = form.get("paths", []), (form.get("expand") or ["false"])[0]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise HTTPException(400, "'paths' must be a list of strings")
    return paths, flag(expand)


async def paths_info(request: Request) -> JSONResponse:
    repo, commit = readable(request, api_target(request, whole_rev=True))
    try:
        paths, expand = await _paths_request(request)
    except ValueError as err:
        raise HTTPException(400, f"Malformed body: {err}") from err
    entries = [e for p in dict.fromkeys(paths) if (e := shapes.path_entry(commit.tree, p)) is not None]
    entries = _with_xet_hashes(request, entries)
    return JSONResponse(shapes.add_last_commits(repo, commit, entries) if expand else entries)


async def resolve_file(request: Request) -> Response:
    """A file's bytes (GET, with Range) or just its headers (HEAD): X-Repo-Commit, quoted ETag, size."""
    target = resolve_target(request)
    repo, commit = readable(request, target)
    check_gate(request, repo)
    blob = commit.tree.get(target.path)
    if blob is None:
        raise hub_error(404, "Entry not found", "EntryNotFound", **{"X-Repo-Commit": commit.oid})
    headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.sha256 if blob.lfs else blob.oid}"'}
    if blob.lfs:  # the Hub would redirect to its CDN and name the linked object in these two headers
        headers.update({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)})
        headers.update(hub_lfs.xet_headers(request, repo, target.rev, blob.sha256))
    media_type = mimetypes.guess_type(target.path)[0] or "application/octet-stream"
    return FileResponse(repo.content_path(blob), headers=headers, media_type=media_type)


async def no_namespace(request: Request) -> Response:
    """A repo id without a namespace names no repo (the Hub answers RepoNotFound, not "no route")."""
    raise repo_not_found()


_API = "/api/{kind}/{ns}/{name}"

ROUTES: list[Route] = [
    Route("/api/whoami-v2", whoami, methods=["GET"]),
    Route("/api/repos/create", create_repo, methods=["POST"]),
    Route("/api/repos/delete", delete_repo, methods=["DELETE"]),
    Route("/api/validate-yaml", validate_yaml, methods=["POST"]),
    Route("/api/{kind}", list_repos, methods=["GET"]),
    Route(_API, repo_info, methods=["GET"]),
    Route(_API + "/revision/{revision:path}", repo_info, methods=["GET"]),
    Route(_API + "/settings", repo_settings, methods=["PUT"]),
    Route(_API + "/auth-check", auth_check, methods=["GET"]),
    Route(_API + "/auth-check/write", auth_check, methods=["GET"]),
    Route(_API + "/preupload/{rev:path}", preupload, methods=["POST"]),
    Route(_API + "/commit/{rev:path}", create_commit, methods=["POST"]),
    Route(_API + "/commits/{rev:path}", list_commits, methods=["GET"]),
    Route(_API + "/tree/{rest:path}", list_tree, methods=["GET"]),
    Route(_API + "/paths-info/{rev:path}", paths_info, methods=["POST"]),
    Route("/{kind}/{ns}/{name}/resolve/{rest:path}", resolve_file, methods=["GET", "HEAD"]),
    Route("/{ns}/{name}/resolve/{rest:path}", resolve_file, methods=["GET", "HEAD"]),
    *hub_lfs.ROUTES,
    Route("/api/{kind}/{name}", no_namespace, methods=["GET"]),
    *(Route(f"/api/{{kind}}/{{name}}/{action}/{{rest:path}}", no_namespace, methods=["GET"])
      for action in ("revision", "commits", "tree")),
    Route("/{name}/resolve/{rest:path}", no_namespace, methods=["GET", "HEAD"]),
]

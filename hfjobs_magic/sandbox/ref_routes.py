"""Branches, tags, `refs`, super-squash, repo moves and discussions, as huggingface_hub 2.4 calls them.

The refs themselves live in `refs.Refs` (one per repo), discussions in `discussions.Discussions`;
these endpoints find the repo, check who may change it, and answer with the Hub's words and codes.
"""

from __future__ import annotations

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hfjobs_magic.sandbox import discussions as talk
from hfjobs_magic.sandbox.accounts import caller, require_caller
from hfjobs_magic.sandbox.bucket_routes import move_bucket
from hfjobs_magic.sandbox.hub_access import (
    Target,
    api_target,
    commit_at,
    flag,
    hub_error,
    json_body,
    readable,
    repo_url,
    store,
    visible_repo,
    writable,
)
from hfjobs_magic.sandbox.refs import MAIN, RefError, RefMissing
from hfjobs_magic.sandbox.repos import REPO_TYPES, Repo, RepoExists, now_iso


def _ref_error(err: RefError) -> HTTPException:
    code = "RevisionNotFound" if isinstance(err, RefMissing) else None
    return hub_error(err.status, str(err), code)


async def create_branch(request: Request) -> JSONResponse:
    target = api_target(request, whole_rev=True)
    repo = writable(request, target)
    start = (await json_body(request)).get("startingPoint") or MAIN
    oid = commit_at(repo, str(start)).oid
    try:
        repo.change_refs(lambda refs: refs.add_branch(target.rev, oid))
    except RefError as err:
        raise _ref_error(err) from err
    return JSONResponse({"name": target.rev, "ref": f"refs/heads/{target.rev}", "targetCommit": oid})


async def delete_branch(request: Request) -> Response:
    target = api_target(request, whole_rev=True)
    repo = writable(request, target)
    try:
        repo.change_refs(lambda refs: refs.delete_branch(target.rev.removeprefix("refs/heads/")))
    except RefError as err:
        raise _ref_error(err) from err
    return Response(status_code=200)


async def create_tag(request: Request) -> JSONResponse:
    """`POST .../tag/{revision}` with `{"tag": name}`: the tag points at what `revision` resolves to."""
    target = api_target(request, whole_rev=True)
    repo = writable(request, target)
    oid = commit_at(repo, target.rev).oid
    name = (await json_body(request)).get("tag")
    if not isinstance(name, str):
        raise HTTPException(400, "Expected a JSON body with a string 'tag'")
    try:
        repo.change_refs(lambda refs: refs.add_tag(name, oid))
    except RefError as err:
        raise _ref_error(err) from err
    return JSONResponse({"name": name, "ref": f"refs/tags/{name}", "targetCommit": oid})


async def delete_tag(request: Request) -> Response:
    target = api_target(request, whole_rev=True)
    repo = writable(request, target)
    try:
        repo.change_refs(lambda refs: refs.delete_tag(target.rev))
    except RefError as err:
        raise _ref_error(err) from err
    return Response(status_code=200)


def _ref_list(prefix: str, named: dict) -> list[dict]:
    return [{"name": name, "ref": f"{prefix}{name}", "targetCommit": oid} for name, oid in sorted(named.items())]


async def list_refs(request: Request) -> JSONResponse:
    repo, _ = readable(request, api_target(request))
    refs = repo.refs
    body = {"branches": _ref_list("refs/heads/", refs.branches), "converts": [],
            "tags": _ref_list("refs/tags/", refs.tags)}
    if flag(request.query_params.get("include_prs")):
        body["pullRequests"] = [
            {"name": f"refs/pr/{num}", "ref": f"refs/pr/{num}", "targetCommit": oid}
            for num, oid in sorted(refs.pulls.items())
        ]
    return JSONResponse(body)


async def super_squash(request: Request) -> JSONResponse:
    target = api_target(request, whole_rev=True)
    repo = writable(request, target)
    branch = repo.refs.branch_of(target.rev)
    if branch is None:
        raise hub_error(404, f"Invalid rev id: {target.rev}", "RevisionNotFound")
    title = (await json_body(request)).get("message") or f"Super-squash branch '{target.rev}' using huggingface_hub"
    commit = await run_in_threadpool(repo.squash, branch, str(title), require_caller(request).name)
    return JSONResponse({"commitId": commit.oid})


async def move_repo(request: Request) -> JSONResponse:
    body = await json_body(request)
    repo_type = body.get("type") or "model"
    source, dest = str(body.get("fromRepo", "")), str(body.get("toRepo", ""))
    try:
        validate_repo_id(dest)  # also keeps `..` and the like out of the store's folders
    except HFValidationError as err:
        raise HTTPException(400, f"Invalid repo id: '{dest}': {err}") from err
    if dest.count("/") != 1:
        raise HTTPException(400, f"Invalid repo id: '{dest}': it needs a namespace")
    if repo_type == "bucket":
        return move_bucket(request, source, dest)
    if repo_type not in REPO_TYPES:
        raise HTTPException(400, f"Invalid repo type '{repo_type}'")
    repo = writable(request, Target(repo_type, source))
    writable_namespace = require_caller(request).can_write(dest.split("/")[0])
    if not writable_namespace:
        raise HTTPException(403, f"You cannot move a repo to '{dest.split('/')[0]}'")
    try:
        store(request).move(repo, dest)
    except RepoExists as err:
        raise HTTPException(409, f"A {repo_type} repository called {dest} already exists") from err
    return JSONResponse({"url": repo_url(request, repo_type, dest)})


# -- discussions and pull requests -----------------------------------------------------------


def _seen(request: Request) -> Repo:
    """The repo of a discussions URL (whose last segments are no revision), if the caller sees it."""
    return visible_repo(request, api_target(request), caller(request))


async def list_discussions(request: Request) -> JSONResponse:
    repo = _seen(request)
    query = request.query_params
    kind, status, author = query.get("type", "all"), query.get("status", "all"), query.get("author")
    items = [
        talk.summary(d, repo.repo_type, repo.repo_id)
        for d in reversed(repo.discussions.items)
        if (kind == "all" or d["isPullRequest"] == (kind == "pull_request"))
        and (status == "all" or d["status"] == status)
        and (author is None or d["author"] == author)
    ]
    return JSONResponse({"discussions": items, "count": len(items), "start": 0, "numClosedDiscussions": 0})


def _discussion(repo: Repo, request: Request) -> dict:
    num = request.path_params["num"]
    item = repo.discussions.get(int(num)) if num.isdigit() else None
    if item is None:
        raise hub_error(404, "Discussion not found", "EntryNotFound")
    return item


async def discussion_details(request: Request) -> JSONResponse:
    repo = _seen(request)
    return JSONResponse(talk.details(_discussion(repo, request), repo.repo_type, repo.repo_id))


async def create_discussion(request: Request) -> JSONResponse:
    """A discussion, or with `pullRequest` an empty PR whose `refs/pr/N` starts at `main`."""
    repo = visible_repo(request, api_target(request), require_caller(request))
    body, author = await json_body(request), require_caller(request).name
    title = str(body.get("title") or "").strip()
    if not title:
        raise HTTPException(400, "A discussion needs a title")
    pull = flag(body.get("pullRequest"))
    with repo.discussions.lock:
        num = repo.discussions.next_number(repo.refs.pulls)
        start = repo.head.oid
        if pull:
            repo.change_refs(lambda refs: refs.pulls.__setitem__(num, start))
        repo.discussions.open(num, title=title, author=author, date=now_iso(), pull_request=pull,
                              start=start if pull else None, description=str(body.get("description") or ""))
    return JSONResponse({"num": num, "pullRequest": pull})


async def change_status(request: Request) -> JSONResponse:
    repo = writable(request, api_target(request))
    item, status = _discussion(repo, request), (await json_body(request)).get("status")
    if status not in ("open", "closed"):
        raise HTTPException(400, "status must be 'open' or 'closed'")
    with repo.discussions.lock:
        event = repo.discussions.set_status(item["num"], status, require_caller(request).name, now_iso())
    return JSONResponse({"newStatus": event})


async def comment(request: Request) -> JSONResponse:
    """A comment on a discussion or PR; anyone who sees the repo may comment."""
    repo = visible_repo(request, api_target(request), require_caller(request))
    item, text = _discussion(repo, request), (await json_body(request)).get("comment")
    if not isinstance(text, str) or not text.strip():
        raise HTTPException(400, "A comment needs some text")
    with repo.discussions.lock:
        event = repo.discussions.comment(item["num"], text, require_caller(request).name, now_iso())
    return JSONResponse({"newMessage": event})


async def rename(request: Request) -> JSONResponse:
    repo = writable(request, api_target(request))
    item, title = _discussion(repo, request), (await json_body(request)).get("title")
    if not isinstance(title, str) or not title.strip():
        raise HTTPException(400, "A discussion needs a title")
    with repo.discussions.lock:
        event = repo.discussions.rename(item["num"], title.strip(), require_caller(request).name, now_iso())
    return JSONResponse({"newTitle": event})


async def merge_pull_request(request: Request) -> JSONResponse:
    """Apply an open PR's changes (since it began) to its base branch as one commit; 409 on conflicts."""
    repo = writable(request, api_target(request))
    item, author = _discussion(repo, request), require_caller(request).name
    if not item["isPullRequest"] or item["status"] != "open":
        raise HTTPException(400, f"Discussion #{item['num']} is not an open pull request")
    base = repo.refs.branch_of(item["base"])
    start, tip = repo.resolve(item.get("startOid") or ""), repo.resolve(f"refs/pr/{item['num']}")
    if base is None or start is None or tip is None:
        raise HTTPException(409, f"Pull request #{item['num']} lost its base branch or its start")
    title = f"Merge pull request #{item['num']}: {item['title']}"
    try:
        commit = await run_in_threadpool(
            repo.commit_tree, base, lambda tree: talk.merged_tree(start.tree, tip.tree, tree), title=title,
            author=author,
        )
    except talk.MergeConflict as err:
        raise HTTPException(409, str(err)) from err
    with repo.discussions.lock:
        event = repo.discussions.set_status(item["num"], "merged", author, commit.date, merge_oid=commit.oid)
    return JSONResponse({"newStatus": event, "mergeCommitId": commit.oid})


ROUTES = [
    Route("/api/repos/move", move_repo, methods=["POST"]),
    Route("/api/{kind}/{ns}/{name}/branch/{rev:path}", create_branch, methods=["POST"]),
    Route("/api/{kind}/{ns}/{name}/branch/{rev:path}", delete_branch, methods=["DELETE"]),
    Route("/api/{kind}/{ns}/{name}/tag/{rev:path}", create_tag, methods=["POST"]),
    Route("/api/{kind}/{ns}/{name}/tag/{rev:path}", delete_tag, methods=["DELETE"]),
    Route("/api/{kind}/{ns}/{name}/refs", list_refs, methods=["GET"]),
    Route("/api/{kind}/{ns}/{name}/super-squash/{rev:path}", super_squash, methods=["POST"]),
    Route("/api/{kind}/{ns}/{name}/discussions", list_discussions, methods=["GET"]),
    Route("/api/{kind}/{ns}/{name}/discussions", create_discussion, methods=["POST"]),
    Route("/api/{kind}/{ns}/{name}/discussions/{num}", discussion_details, methods=["GET"]),
    Route("/api/{kind}/{ns}/{name}/discussions/{num}/status", change_status, methods=["POST"]),
    Route("/api/{kind}/{ns}/{name}/discussions/{num}/merge", merge_pull_request, methods=["POST"]),
    Route("/api/{kind}/{ns}/{name}/discussions/{num}/comment", comment, methods=["POST"]),
    Route("/api/{kind}/{ns}/{name}/discussions/{num}/title", rename, methods=["POST"]),
]

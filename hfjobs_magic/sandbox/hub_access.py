"""Where a Hub URL points and who may see or change it, shared by the Hub and LFS routes.

A repo id and revision are read from the raw (still quoted) path, because the
client quotes a revision like `refs/pr/1` into one segment. A private repo is
404 to everyone outside its namespace, exactly as the Hub hides it; errors
carry the `X-Error-Code` that `hf_raise_for_status` turns into typed errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote

from starlette.exceptions import HTTPException
from starlette.requests import Request

from hfjobs_magic.sandbox.accounts import Identity, caller, require_caller, require_writer
from hfjobs_magic.sandbox.repos import MAIN, Commit, Repo, RepoStore

KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def hub_error(status: int, message: str, code: str | None = None, **headers: str) -> HTTPException:
    """An error the client can type: `code` goes in `X-Error-Code`, as on the Hub."""
    if code:
        headers["X-Error-Code"] = code
    return HTTPException(status, message, headers=headers or None)


def repo_not_found() -> HTTPException:
    return hub_error(404, "Repository not found", "RepoNotFound")


# -- what a URL points at -------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    repo_type: str
    repo_id: str
    rev: str = MAIN
    path: str = ""


def _segments(request: Request) -> list[str]:
    """The raw (still quoted) path segments: a revision like `refs%2Fpr%2F1` must stay one segment."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return raw.decode("latin-1").split("?", 1)[0].strip("/").split("/")


def _revision_and_path(segments: list[str]) -> tuple[str, str]:
    """`[rev, *path]` -> (revision, path); `refs/convert/parquet` may also come unquoted."""
    if not segments or not segments[0]:
        return MAIN, ""
    n = 3 if segments[0] == "refs" and len(segments) >= 3 else 1
    return unquote("/".join(segments[:n])), "/".join(unquote(s) for s in segments[n:])


def api_target(request: Request, *, whole_rev: bool = False) -> Target:
    """`/api/{kind}s/{ns}/{name}/{action}/{rev}/{path}`."""
    seg = _segments(request)
    if len(seg) < 4 or seg[1] not in KINDS:
        raise HTTPException(404)  # the app names the unknown route
    repo_id = f"{unquote(seg[2])}/{unquote(seg[3])}"
    if whole_rev:
        return Target(KINDS[seg[1]], repo_id, unquote("/".join(seg[5:])) or MAIN)
    return Target(KINDS[seg[1]], repo_id, *_revision_and_path(seg[5:]))


def resolve_target(request: Request) -> Target:
    """`/{prefix}{ns}/{name}/resolve/{rev}/{path}`, prefix "" for models."""
    seg = _segments(request)
    repo_type = "model"
    if seg[0] in ("datasets", "spaces") and len(seg) > 4 and seg[3] == "resolve":
        repo_type, seg = KINDS[seg[0]], seg[1:]
    if len(seg) < 4 or seg[2] != "resolve":
        raise HTTPException(404)
    return Target(repo_type, f"{unquote(seg[0])}/{unquote(seg[1])}", *_revision_and_path(seg[3:]))


# -- who may see and change what -------------------------------------------------------------


def store(request: Request) -> RepoStore:
    return request.app.state.sandbox.repos


def visible_repo(request: Request, target: Target, identity: Identity | None) -> Repo:
    """The repo, if it exists and the caller may see it; a private repo is 404 to outsiders."""
    repo = store(request).get(target.repo_type, target.repo_id)
    if repo is None or (repo.private and not (identity and identity.member_of(repo.namespace))):
        raise repo_not_found()
    return repo


def commit_at(repo: Repo, rev: str) -> Commit:
    commit = repo.resolve(rev)
    if commit is None:
        raise hub_error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
    return commit


def check_gate(request: Request, repo: Repo) -> None:
    """A gated repo's files are for its namespace's members only here (no access requests): 403 GatedRepo."""
    identity = caller(request)
    if repo.meta.get("gated") and not (identity and identity.member_of(repo.namespace)):
        what = f"Access to {repo.repo_type} {repo.repo_id} is restricted"
        if identity is None:
            message = f"{what}. You must have access to it and be authenticated to access it. Please log in."
        else:
            message = f"{what} and you are not in the authorized list. Ask its owners for access."
        raise hub_error(403 if identity else 401, message, "GatedRepo")


def readable(request: Request, target: Target) -> tuple[Repo, Commit]:
    repo = visible_repo(request, target, caller(request))
    return repo, commit_at(repo, target.rev)


def writable(request: Request, target: Target) -> Repo:
    """401 without a token, 404 for a repo the caller cannot see, 403 without write access."""
    repo = visible_repo(request, target, require_caller(request))
    require_writer(request, repo.namespace)
    return repo


def committer(request: Request, target: Target) -> Repo:
    """The repo, if the caller may commit to it: its writers, or with `create_pr` anyone who sees it."""
    if flag(request.query_params.get("create_pr")):
        repo = visible_repo(request, target, require_caller(request))
        if require_caller(request).role != "write":
            raise HTTPException(403, "Forbidden: your token is read-only")
        return repo
    return writable(request, target)


def repo_url(request: Request, repo_type: str, repo_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/{URL_PREFIX[repo_type]}{repo_id}"


# -- request bodies and pages ------------------------------------------------------------------


async def json_body(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as err:
        raise HTTPException(400, f"Malformed JSON body: {err}") from err
    if not isinstance(body, dict):
        raise HTTPException(400, "Malformed JSON body: expected an object")
    return body


def flag(value: object) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")

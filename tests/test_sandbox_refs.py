"""Branches, tags, pull requests, squashes, moves and gates in the sandbox, through the real client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hfjobs_magic.sandbox import Sandbox


@pytest.fixture
def repo(api: HfApi, sandbox: Sandbox, unique_name: str) -> str:
    repo_id = f"{sandbox.user}/{unique_name}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=repo_id)
    return repo_id


@pytest.fixture
def other_api(sandbox: Sandbox) -> HfApi:
    return HfApi(endpoint=sandbox.endpoint, token=sandbox.other_token)


def read(api: HfApi, repo_id: str, path: str, revision: str, tmp_path: Path) -> bytes:
    local = hf_hub_download(repo_id, path, revision=revision, endpoint=api.endpoint, token=api.token,
                            cache_dir=tmp_path / "cache")
    return Path(local).read_bytes()


def test_branch_lives_apart_from_main(api: HfApi, repo: str, tmp_path: Path) -> None:
    start = api.model_info(repo).sha
    api.create_branch(repo, branch="exp")
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id=repo, revision="exp")
    assert api.model_info(repo).sha == start
    assert read(api, repo, "a.txt", "exp", tmp_path) == b"v2"
    assert read(api, repo, "a.txt", "main", tmp_path) == b"v1"
    refs = {ref.name: ref.target_commit for ref in api.list_repo_refs(repo).branches}
    assert refs == {"main": start, "exp": api.model_info(repo, revision="exp").sha}
    assert len(api.list_repo_commits(repo, revision="exp")) == 3


def test_branch_errors_are_the_hubs(api: HfApi, repo: str) -> None:
    api.create_branch(repo, branch="exp")
    with pytest.raises(HfHubHTTPError, match="Reference refs/heads/exp already exists") as info:
        api.create_branch(repo, branch="exp")
    assert info.value.response.status_code == 409
    api.create_branch(repo, branch="exp", exist_ok=True)
    with pytest.raises(HfHubHTTPError, match="Cannot delete refs/heads/main"):
        api.delete_branch(repo, branch="main")
    with pytest.raises(RevisionNotFoundError):
        api.delete_branch(repo, branch="missing")
    api.delete_branch(repo, branch="exp")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo, revision="exp")


def test_branch_from_a_revision_and_tags(api: HfApi, repo: str) -> None:
    first = api.list_repo_commits(repo)[-1].commit_id
    api.create_branch(repo, branch="old", revision=first[:7])
    api.create_tag(repo, tag="v1", revision="old")
    assert api.model_info(repo, revision="v1").sha == first
    assert api.model_info(repo, revision="refs/tags/v1").sha == first
    with pytest.raises(HfHubHTTPError) as info:
        api.create_tag(repo, tag="v1")
    assert info.value.response.status_code == 409
    with pytest.raises(RevisionNotFoundError):
        api.create_tag(repo, tag="v2", revision="nowhere")
    with pytest.raises(HfHubHTTPError):
        api.create_tag(repo, tag="bad name")
    assert [tag.name for tag in api.list_repo_refs(repo).tags] == ["v1"]
    api.delete_tag(repo, tag="v1")
    with pytest.raises(RevisionNotFoundError):
        api.delete_tag(repo, tag="v1")


def test_create_pr_commits_to_a_pull_request(api: HfApi, repo: str, tmp_path: Path) -> None:
    main = api.model_info(repo).sha
    info = api.upload_file(path_or_fileobj=b"proposal", path_in_repo="b.txt", repo_id=repo, create_pr=True)
    assert (info.pr_num, info.pr_revision) == (1, "refs/pr/1")
    assert api.model_info(repo).sha == main
    assert read(api, repo, "b.txt", "refs/pr/1", tmp_path) == b"proposal"
    api.upload_file(path_or_fileobj=b"more", path_in_repo="c.txt", repo_id=repo, revision="refs/pr/1")
    assert {f for f in api.list_repo_files(repo, revision="refs/pr/1")} >= {"b.txt", "c.txt"}
    pulls = api.list_repo_refs(repo, include_pull_requests=True).pull_requests
    assert [(p.ref, p.target_commit) for p in pulls] == [("refs/pr/1", api.model_info(repo, revision="refs/pr/1").sha)]
    details = api.get_discussion_details(repo, 1)
    assert details.is_pull_request and details.target_branch == "refs/heads/main" and details.status == "open"
    assert [e.summary for e in details.events if e.type == "commit"] == ["Upload b.txt with huggingface_hub",
                                                                        "Upload c.txt with huggingface_hub"]
    assert [d.num for d in api.get_repo_discussions(repo, discussion_type="pull_request")] == [1]
    assert api.create_pull_request(repo, title="empty").num == 2


def test_anyone_may_open_a_pr_but_not_push(api: HfApi, other_api: HfApi, repo: str) -> None:
    info = other_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.bin", repo_id=repo, create_pr=True)
    assert info.pr_revision == "refs/pr/1"
    with pytest.raises(HfHubHTTPError) as denied:
        other_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo)
    assert denied.value.response.status_code == 403
    with pytest.raises(RevisionNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo,
                        revision=api.model_info(repo).sha, create_pr=True)


def test_stale_parent_commit_is_412_with_the_hubs_words(api: HfApi, repo: str) -> None:
    parent = api.model_info(repo).sha
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id=repo)
    with pytest.raises(HfHubHTTPError, match="The branch was updated since you opened this page") as info:
        api.create_commit(repo, [CommitOperationAdd("b.txt", b"b")], commit_message="late", parent_commit=parent)
    assert info.value.response.status_code == 412


def test_super_squash_keeps_other_branches(api: HfApi, repo: str) -> None:
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id=repo)
    api.create_branch(repo, branch="keep")
    api.super_squash_history(repo)
    squashed = api.list_repo_commits(repo)
    assert [c.title for c in squashed] == ["Super-squash branch 'main' using huggingface_hub"]
    assert len(api.list_repo_commits(repo, revision="keep")) == 3
    assert api.model_info(repo).siblings == api.model_info(repo, revision="keep").siblings


def test_move_repo(api: HfApi, repo: str, sandbox: Sandbox) -> None:
    target = f"{sandbox.user}/{repo.split('/')[1]}-moved"
    api.move_repo(repo, target)
    assert api.model_info(target).siblings is not None
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(repo)
    other = api.create_repo(f"{repo}-other").repo_id
    with pytest.raises(HfHubHTTPError, match="A model repository called .* already exists"):
        api.move_repo(other, target)


def test_gated_repo_keeps_its_files_from_others(api: HfApi, other_api: HfApi, repo: str, tmp_path: Path) -> None:
    api.update_repo_settings(repo, gated="manual")
    assert api.model_info(repo).gated == "manual"
    api.auth_check(repo)
    with pytest.raises(GatedRepoError):
        other_api.auth_check(repo)
    with pytest.raises(GatedRepoError):
        read(other_api, repo, "a.txt", "main", tmp_path)


def test_upload_folder_honours_the_repos_gitignore(api: HfApi, repo: str, tmp_path: Path) -> None:
    api.upload_file(path_or_fileobj=b"build/*\n*.log\n", path_in_repo=".gitignore", repo_id=repo)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.bin").write_bytes(b"x")
    (tmp_path / "run.log").write_text("x")
    (tmp_path / "keep.txt").write_text("x")
    api.upload_folder(folder_path=tmp_path, repo_id=repo)
    files = set(api.list_repo_files(repo))
    assert "keep.txt" in files and "build/out.bin" not in files and "run.log" not in files


def test_refs_survive_a_restart_and_old_repos_load(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Sandbox(data_dir=data) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        repo = api.create_repo(f"{sb.user}/kept").repo_id
        head = api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=repo).oid
    folder = data / "repos" / "models" / repo
    assert not (folder / "refs.json").exists()  # a main-only repo is stored as before refs existed
    with Sandbox(data_dir=data) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        assert api.model_info(repo).sha == head
        api.create_branch(repo, branch="exp")
        api.create_tag(repo, tag="v1")
        pr = api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id=repo, create_pr=True)
    with Sandbox(data_dir=data) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        assert api.model_info(repo).sha == head
        assert api.model_info(repo, revision="exp").sha == head
        assert api.model_info(repo, revision="v1").sha == head
        assert api.model_info(repo, revision=pr.pr_revision).sha == pr.oid
        assert api.get_discussion_details(repo, pr.pr_num).is_pull_request


def test_merge_pull_request_applies_its_changes(api: HfApi, repo: str, tmp_path: Path) -> None:
    pr = api.upload_file(path_or_fileobj=b"new", path_in_repo="b.txt", repo_id=repo, create_pr=True)
    api.upload_file(path_or_fileobj=b"main moved on", path_in_repo="c.txt", repo_id=repo)  # no conflict
    api.merge_pull_request(repo, pr.pr_num)
    assert set(api.list_repo_files(repo)) >= {"a.txt", "b.txt", "c.txt"}
    details = api.get_discussion_details(repo, pr.pr_num)
    assert details.status == "merged" and details.merge_commit_oid == api.model_info(repo).sha
    with pytest.raises(HfHubHTTPError):
        api.merge_pull_request(repo, pr.pr_num)  # merged already


def test_merge_refuses_a_conflict(api: HfApi, repo: str) -> None:
    pr = api.upload_file(path_or_fileobj=b"theirs", path_in_repo="a.txt", repo_id=repo, create_pr=True)
    api.upload_file(path_or_fileobj=b"ours", path_in_repo="a.txt", repo_id=repo)
    head = api.model_info(repo).sha
    with pytest.raises(HfHubHTTPError, match="conflicts with its base: a.txt") as info:
        api.merge_pull_request(repo, pr.pr_num)
    assert info.value.response.status_code == 409
    assert api.model_info(repo).sha == head and api.get_discussion_details(repo, pr.pr_num).status == "open"


def test_refs_to_lost_commits_are_dropped_on_load(tmp_path: Path) -> None:
    """A crash after a ref was written but before its commit line landed leaves a ref to nothing."""
    data = tmp_path / "data"
    with Sandbox(data_dir=data) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        repo = api.create_repo(f"{sb.user}/torn").repo_id
        api.create_branch(repo, branch="exp")
        head = api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id=repo, revision="exp").oid
    commits = data / "repos" / "models" / repo / "commits.jsonl"
    lines = commits.read_bytes().splitlines(keepends=True)
    commits.write_bytes(b"".join(lines[:-1]) + lines[-1][:20])  # the last commit's line, torn
    with Sandbox(data_dir=data) as sb:
        api = HfApi(endpoint=sb.endpoint, token=sb.token)
        assert api.model_info(repo).sha != head
        assert [b.name for b in api.list_repo_refs(repo).branches] == ["main"]


@pytest.mark.parametrize("dest", ["{user}/..", "{user}/.git", "../escape", "{user}/a/b", "nonamespace"])
def test_move_refuses_names_that_leave_the_store(api: HfApi, sandbox: Sandbox, repo: str, dest: str) -> None:
    def layout() -> list[str]:
        return sorted(str(p.relative_to(sandbox.data_dir)) for p in sandbox.data_dir.glob("*/*/*"))

    before = layout()
    for kind in ("model", "bucket"):
        answer = httpx.post(f"{sandbox.endpoint}/api/repos/move", headers={"authorization": f"Bearer {sandbox.token}"},
                            json={"fromRepo": repo, "toRepo": dest.format(user=sandbox.user), "type": kind})
        assert answer.status_code == 400, (kind, answer.text)
    assert layout() == before and api.model_info(repo).id == repo


def test_discussion_comments_titles_and_status(api: HfApi, other_api: HfApi, repo: str) -> None:
    num = api.create_discussion(repo, title="Question", description="Why?").num
    assert other_api.comment_discussion(repo, num, "Because.").content == "Because."
    assert api.rename_discussion(repo, num, "Answered").new_title == "Answered"
    assert api.change_discussion_status(repo, num, "closed").new_status == "closed"
    details = api.get_discussion_details(repo, num)
    assert (details.title, details.status, details.is_pull_request) == ("Answered", "closed", False)
    assert [e.type for e in details.events] == ["comment", "comment", "title-change", "status-change"]
    assert [d.num for d in api.get_repo_discussions(repo, discussion_status="closed")] == [num]
    with pytest.raises(HfHubHTTPError) as denied:
        other_api.rename_discussion(repo, num, "Mine now")
    assert denied.value.response.status_code == 403

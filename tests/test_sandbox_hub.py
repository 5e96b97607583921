"""The sandbox's Hub routes, driven by the real huggingface_hub client over loopback."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hfjobs_magic.sandbox import Sandbox
from hfjobs_magic.sandbox.repos import Put


def raw(method: str, url: str, token: str | None = None, body: bytes | None = None, **headers: str):
    """A plain HTTP request, for what the client refuses to send: (status, headers, body)."""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def ndjson(*items: dict) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def header(summary: str = "raw commit", **extra: str) -> dict:
    return {"key": "header", "value": {"summary": summary, "description": "", **extra}}


def add(path: str, data: bytes) -> dict:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}


def stored_files(sb: Sandbox) -> set[Path]:
    return {p for p in (sb.data_dir / "repos").rglob("*") if p.is_file()}


@pytest.fixture
def repo(api: HfApi, sandbox: Sandbox, unique_name: str) -> str:
    repo_id = f"{sandbox.user}/{unique_name}"
    api.create_repo(repo_id)
    return repo_id


# -- accounts and repos ----------------------------------------------------------------------------


def test_whoami_names_user_and_orgs(api: HfApi, read_api: HfApi) -> None:
    me = api.whoami()
    assert me["name"] == "alice"
    assert {o["name"] for o in me["orgs"]} == {"alice-lab", "big-corp"}
    assert me["auth"]["accessToken"]["role"] == "write"
    assert read_api.whoami()["auth"]["accessToken"]["role"] == "read"


def test_bad_or_missing_token_is_401(sandbox: Sandbox) -> None:
    with pytest.raises(HfHubHTTPError) as info:
        HfApi(endpoint=sandbox.endpoint, token="hf_not_a_token").whoami()
    assert info.value.response.status_code == 401
    status, _, _ = raw("GET", f"{sandbox.endpoint}/api/whoami-v2")
    assert status == 401


def test_create_repo_conflict_and_exist_ok(api: HfApi, sandbox: Sandbox, unique_name: str) -> None:
    repo_id = f"alice/{unique_name}"
    url = api.create_repo(repo_id)
    assert url.repo_id == repo_id and url.endpoint == sandbox.endpoint
    assert api.create_repo(repo_id, exist_ok=True).repo_id == repo_id
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo(repo_id)
    assert info.value.response.status_code == 409
    assert info.value.response.json()["url"].endswith(f"/{repo_id}")


@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
def test_repo_info_for_every_type(api: HfApi, unique_name: str, repo_type: str) -> None:
    repo_id = f"alice-lab/{unique_name}"
    api.create_repo(repo_id, repo_type=repo_type, space_sdk="gradio" if repo_type == "space" else None)
    readme = b"---\nlicense: mit\ntags: [sandbox]\n---\n# Hello\n"
    commit = api.upload_file(path_or_fileobj=readme, path_in_repo="README.md", repo_id=repo_id, repo_type=repo_type)
    info = api.repo_info(repo_id, repo_type=repo_type, files_metadata=True)
    assert info.id == repo_id and info.sha == commit.oid and info.private is False
    assert info.author == "alice-lab" and info.last_modified is not None
    assert {s.rfilename for s in info.siblings} == {".gitattributes", "README.md"}
    assert next(s for s in info.siblings if s.rfilename == "README.md").size == len(readme)
    assert info.card_data["license"] == "mit"
    assert commit.repo_url.repo_type == repo_type


def test_repo_info_at_a_revision_and_unknown_revision(api: HfApi, repo: str) -> None:
    first = api.repo_info(repo).sha
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo)
    old = api.repo_info(repo, revision=first)
    assert old.sha == first and [s.rfilename for s in old.siblings] == [".gitattributes"]
    assert api.repo_info(repo, revision=first[:7]).sha == first
    with pytest.raises(RevisionNotFoundError):
        api.repo_info(repo, revision="no-such-branch")
    assert api.revision_exists(repo, "main") and not api.revision_exists(repo, "nope")


def test_unknown_repo_is_repository_not_found(api: HfApi) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info("alice/does-not-exist")
    assert not api.repo_exists("alice/does-not-exist")


def test_read_token_cannot_write(read_api: HfApi, repo: str, unique_name: str) -> None:
    with pytest.raises(HfHubHTTPError) as info:
        read_api.create_repo(f"alice/{unique_name}-2")
    assert info.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as info:
        read_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo)
    assert info.value.response.status_code == 403
    assert read_api.repo_info(repo).id == repo  # reading is fine


@pytest.mark.parametrize("namespace", ["big-corp", "bob", "nobody-at-all"])
def test_foreign_namespaces_are_403(api: HfApi, unique_name: str, namespace: str) -> None:
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo(f"{namespace}/{unique_name}")
    assert info.value.response.status_code == 403


def test_private_repo_is_invisible_to_bob(api: HfApi, sandbox: Sandbox, unique_name: str, tmp_path: Path) -> None:
    repo_id = f"alice/{unique_name}"
    api.create_repo(repo_id, private=True)
    api.upload_file(path_or_fileobj=b"secret", path_in_repo="s.txt", repo_id=repo_id)
    bob = HfApi(endpoint=sandbox.endpoint, token=sandbox.other_token)
    anonymous = HfApi(endpoint=sandbox.endpoint, token=False)
    for outsider in (bob, anonymous):
        with pytest.raises(RepositoryNotFoundError):
            outsider.repo_info(repo_id)
        assert not outsider.file_exists(repo_id, "s.txt")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "s.txt", endpoint=sandbox.endpoint, token=sandbox.other_token, cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert api.repo_info(repo_id).private is True


def test_settings_and_delete(api: HfApi, sandbox: Sandbox, repo: str) -> None:
    bob = HfApi(endpoint=sandbox.endpoint, token=sandbox.other_token)
    assert bob.repo_exists(repo)
    api.update_repo_settings(repo, private=True)
    assert not bob.repo_exists(repo)
    api.delete_repo(repo)
    assert not api.repo_exists(repo)
    api.delete_repo(repo, missing_ok=True)
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo(repo)


def test_list_repos_and_auth_check(api: HfApi, read_api: HfApi, sandbox: Sandbox, unique_name: str) -> None:
    public, private = f"alice-lab/{unique_name}-pub", f"alice-lab/{unique_name}-priv"
    api.create_repo(public, repo_type="dataset")
    api.create_repo(private, repo_type="dataset", private=True)
    bob = HfApi(endpoint=sandbox.endpoint, token=sandbox.other_token)
    assert {d.id for d in api.list_datasets(author="alice-lab", search=unique_name)} == {public, private}
    assert {d.id for d in bob.list_datasets(author="alice-lab", search=unique_name)} == {public}
    assert not any(m.id == public for m in api.list_models(search=unique_name))
    api.auth_check(private, repo_type="dataset", write=True)
    read_api.auth_check(private, repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as info:
        read_api.auth_check(private, repo_type="dataset", write=True)
    assert info.value.response.status_code == 403
    with pytest.raises(RepositoryNotFoundError):
        bob.auth_check(private, repo_type="dataset")


# -- commits -----------------------------------------------------------------------------------------


def test_upload_and_download_round_trip(api: HfApi, sandbox: Sandbox, repo: str, tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    api.upload_file(path_or_fileobj=data, path_in_repo="bin/blob.dat", repo_id=repo)
    path = hf_hub_download(repo, "bin/blob.dat", endpoint=sandbox.endpoint, token=sandbox.token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == data
    assert api.file_exists(repo, "bin/blob.dat") and not api.file_exists(repo, "bin/nope.dat")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo, "missing.txt", endpoint=sandbox.endpoint, token=sandbox.token, cache_dir=tmp_path)


def test_resolve_headers_and_range(sandbox: Sandbox, api: HfApi, repo: str) -> None:
    commit = api.upload_file(path_or_fileobj=b"0123456789", path_in_repo="digits.txt", repo_id=repo)
    url = f"{sandbox.endpoint}/{repo}/resolve/main/digits.txt"
    status, headers, body = raw("HEAD", url, sandbox.token)
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == commit.oid and headers["Content-Length"] == "10"
    assert headers["ETag"].startswith('"') and len(headers["ETag"]) == 42
    status, headers, body = raw("GET", url, sandbox.token, Range="bytes=3-5")
    assert status == 206 and body == b"345"
    status, headers, _ = raw("HEAD", f"{sandbox.endpoint}/{repo}/resolve/main/nope.txt", sandbox.token)
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"
    assert headers["X-Repo-Commit"] == commit.oid


def test_upload_folder_nested_and_listings(api: HfApi, repo: str, tmp_path: Path) -> None:
    for rel in ("a.txt", "sub/b.txt", "sub/deeper/c.txt", "other/d.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    api.upload_folder(folder_path=tmp_path, repo_id=repo, path_in_repo="data")
    files = set(api.list_repo_files(repo))
    assert files == {".gitattributes", "data/a.txt", "data/sub/b.txt", "data/sub/deeper/c.txt", "data/other/d.txt"}
    top = {(e.path, type(e).__name__) for e in api.list_repo_tree(repo, "data")}
    assert top == {("data/a.txt", "RepoFile"), ("data/sub", "RepoFolder"), ("data/other", "RepoFolder")}
    everything = list(api.list_repo_tree(repo, recursive=True, expand=True))
    assert {e.path for e in everything} >= files | {"data", "data/sub", "data/sub/deeper"}
    assert all(e.last_commit is not None for e in everything)
    infos = api.get_paths_info(repo, ["data/a.txt", "data/sub", "missing"])
    assert [(i.path, type(i).__name__) for i in infos] == [("data/a.txt", "RepoFile"), ("data/sub", "RepoFolder")]
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree(repo, "no/such/folder"))


def test_commit_with_deletions(api: HfApi, repo: str) -> None:
    ops = [CommitOperationAdd(p, p.encode()) for p in ("keep.txt", "gone.txt", "dir/x.txt", "dir/sub/y.txt")]
    api.create_commit(repo, ops, commit_message="add")
    commit = api.create_commit(
        repo,
        [CommitOperationDelete("gone.txt"), CommitOperationDelete("dir/"), CommitOperationAdd("new.txt", b"n")],
        commit_message="delete some",
        commit_description="a longer description",
    )
    assert set(api.list_repo_files(repo)) == {".gitattributes", "keep.txt", "new.txt"}
    newest = api.list_repo_commits(repo)[0]
    assert (newest.commit_id, newest.title, newest.message) == (commit.oid, "delete some", "a longer description")
    with pytest.raises(RemoteEntryNotFoundError):
        api.create_commit(repo, [CommitOperationDelete("never-there.txt")], commit_message="x")


def test_commit_history_order_and_pages(api: HfApi, sandbox: Sandbox, repo: str) -> None:
    store_repo = sandbox.state.repos.get("model", repo)
    for i in range(60):  # straight through the store: 60 HTTP commits would only slow the test
        store_repo.commit([Put(f"f{i}.txt", b"%d" % i)], title=f"commit {i}", message="", author="alice")
    commits = api.list_repo_commits(repo)
    assert [c.title for c in commits] == [f"commit {i}" for i in reversed(range(60))] + ["initial commit"]
    assert commits[0].commit_id == api.repo_info(repo).sha and commits[0].authors == ["alice"]
    status, headers, body = raw("GET", f"{sandbox.endpoint}/api/models/{repo}/commits/main", sandbox.token)
    assert status == 200 and len(json.loads(body)) == 50 and 'rel="next"' in headers["Link"]


def test_tree_pagination(api: HfApi, sandbox: Sandbox, repo: str) -> None:
    store_repo = sandbox.state.repos.get("model", repo)
    store_repo.commit([Put(f"many/{i:04d}.txt", b"x") for i in range(1005)], title="many", message="", author="a")
    assert len([e for e in api.list_repo_tree(repo, "many")]) == 1005
    status, headers, body = raw("GET", f"{sandbox.endpoint}/api/models/{repo}/tree/main/many?limit=2", sandbox.token)
    assert [e["path"] for e in json.loads(body)] == ["many/0000.txt", "many/0001.txt"]
    assert "cursor=2" in headers["Link"]


def test_unchanged_file_is_skipped(api: HfApi, repo: str) -> None:
    first = api.upload_file(path_or_fileobj=b"same", path_in_repo="same.txt", repo_id=repo)
    again = api.upload_file(path_or_fileobj=b"same", path_in_repo="same.txt", repo_id=repo)
    assert again.oid == first.oid  # the preupload answered the remote oid, the client skipped the commit


def test_parent_commit_conflict_is_412(api: HfApi, repo: str) -> None:
    base = api.repo_info(repo).sha
    api.upload_file(path_or_fileobj=b"1", path_in_repo="one.txt", repo_id=repo)
    with pytest.raises(HfHubHTTPError) as info:
        api.create_commit(repo, [CommitOperationAdd("two.txt", b"2")], commit_message="late", parent_commit=base)
    assert info.value.response.status_code == 412
    head = api.repo_info(repo).sha
    ok = api.create_commit(repo, [CommitOperationAdd("two.txt", b"2")], commit_message="ok", parent_commit=head)
    assert api.repo_info(repo).sha == ok.oid


def test_concurrent_uploads_all_land(sandbox: Sandbox, repo: str) -> None:
    errors: list[BaseException] = []

    def upload(i: int) -> None:
        try:
            api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
            api.upload_file(path_or_fileobj=b"%d" % i, path_in_repo=f"t/{i}.txt", repo_id=repo)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    assert {f"t/{i}.txt" for i in range(8)} <= set(api.list_repo_files(repo))
    assert len(api.list_repo_commits(repo)) == 9


@pytest.mark.parametrize("bad", ["../escape.txt", "a/../../b.txt", "/etc/passwd", "a//b.txt", "a/./b", ".git/config"])
def test_path_traversal_refused_and_nothing_written(sandbox: Sandbox, api: HfApi, repo: str, bad: str) -> None:
    before, head = stored_files(sandbox), api.repo_info(repo).sha
    body = ndjson(header(), add("fine.txt", b"ok"), add(bad, b"pwned"))
    status, _, answer = raw(
        "POST",
        f"{sandbox.endpoint}/api/models/{repo}/commit/main",
        sandbox.token,
        body,
        **{"Content-Type": "application/x-ndjson"},
    )
    assert status == 400 and "path" in json.loads(answer)["error"].lower()
    assert stored_files(sandbox) == before and api.repo_info(repo).sha == head
    assert not (sandbox.data_dir.parent / "escape.txt").exists()


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"{not json\n", "Malformed NDJSON"),
        (ndjson(add("a.txt", b"a")), "header"),
        (ndjson(header(), {"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256", "oid": "0" * 64}}), "LFS"),
        (ndjson(header(), {"key": "rename", "value": {"path": "x"}}), "unknown operation"),
    ],
    ids=["not-json", "no-header", "lfs-not-uploaded", "unknown-key"],
)
def test_malformed_commits_are_400(sandbox: Sandbox, repo: str, body: bytes, expected: str) -> None:
    status, _, answer = raw("POST", f"{sandbox.endpoint}/api/models/{repo}/commit/main", sandbox.token, body)
    assert status in (400, 422) and expected in json.loads(answer)["error"]


def test_invalid_readme_yaml_is_refused(api: HfApi, repo: str) -> None:
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.upload_file(path_or_fileobj=b"---\nkey: [unclosed\n---\n", path_in_repo="README.md", repo_id=repo)


def test_oversized_file_is_413(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.state.limits.max_file_bytes = 100
    api = HfApi(endpoint=fresh_sandbox.endpoint, token=fresh_sandbox.token)
    api.create_repo("alice/limits")
    with pytest.raises(HfHubHTTPError) as info:
        api.upload_file(path_or_fileobj=b"x" * 101, path_in_repo="big.bin", repo_id="alice/limits")
    assert info.value.response.status_code == 413
    before = stored_files(fresh_sandbox)
    url = f"{fresh_sandbox.endpoint}/api/models/alice/limits/commit/main"
    status, _, _ = raw("POST", url, fresh_sandbox.token, ndjson(header(), add("big.bin", b"x" * 101)))
    assert status == 413 and stored_files(fresh_sandbox) == before
    api.upload_file(path_or_fileobj=b"x" * 100, path_in_repo="ok.bin", repo_id="alice/limits")


def test_repos_survive_a_restart(tmp_path: Path) -> None:
    with Sandbox(data_dir=tmp_path) as first:
        api = HfApi(endpoint=first.endpoint, token=first.token)
        api.create_repo("alice/kept", repo_type="dataset", private=True)
        commit = api.upload_file(
            path_or_fileobj=b"still here", path_in_repo="k.txt", repo_id="alice/kept", repo_type="dataset"
        )
    with Sandbox(data_dir=tmp_path) as second:
        api = HfApi(endpoint=second.endpoint, token=second.token)
        info = api.dataset_info("alice/kept")
        assert info.sha == commit.oid and info.private is True
        assert [c.title for c in api.list_repo_commits("alice/kept", repo_type="dataset")][-1] == "initial commit"
        path = hf_hub_download(
            "alice/kept",
            "k.txt",
            repo_type="dataset",
            endpoint=second.endpoint,
            token=second.token,
            cache_dir=tmp_path / "cache",
        )
        assert Path(path).read_bytes() == b"still here"
    assert tmp_path.exists()  # a data dir the caller gave is theirs to keep


# -- LFS, for the datasets library -------------------------------------------------------------------


def test_preupload_answers_lfs_where_the_hub_would(sandbox: Sandbox, repo: str) -> None:
    url = f"{sandbox.endpoint}/api/models/{repo}/preupload/main"
    binary = base64.b64encode(b"\x89PNG\x00\x01").decode()
    files = [
        {"path": "a.txt", "size": 1, "sample": ""},
        {"path": "d/x.parquet", "size": 1, "sample": ""},  # tracked by the default .gitattributes
        {"path": "big.txt", "size": 10 * 1024 * 1024, "sample": ""},
        {"path": "img.png", "size": 6, "sample": binary},
    ]
    status, _, answer = raw("POST", url, sandbox.token, json.dumps({"files": files}).encode())
    assert status == 200
    assert [f["uploadMode"] for f in json.loads(answer)["files"]] == ["regular", "lfs", "lfs", "lfs"]


def test_lfs_upload_round_trip(
    sandbox: Sandbox, unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the plain LFS path, as with Xet turned off
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token, library_name="datasets", library_version="5")
    repo_id, kind = f"alice/{unique_name}", {"repo_type": "dataset"}
    api.create_repo(repo_id, **kind)
    data = b"PAR1" + bytes(range(200)) * 50
    api.upload_file(path_or_fileobj=data, path_in_repo="data/train.parquet", repo_id=repo_id, **kind)
    entry = next(e for e in api.list_repo_tree(repo_id, "data", **kind))
    assert entry.lfs is not None and entry.lfs.size == len(data) and entry.size == len(data)
    again = api.upload_file(path_or_fileobj=data, path_in_repo="data/train.parquet", repo_id=repo_id, **kind)
    assert again.oid == api.repo_info(repo_id, **kind).sha  # same sha256: nothing to commit
    path = hf_hub_download(
        repo_id, "data/train.parquet", endpoint=sandbox.endpoint, token=sandbox.token, cache_dir=tmp_path, **kind
    )
    assert Path(path).read_bytes() == data


def test_xet_token_routes(sandbox: Sandbox, repo: str) -> None:
    for kind in ("write", "read"):
        url = f"{sandbox.endpoint}/api/models/{repo}/xet-{kind}-token/main"
        status, headers, body = raw("GET", url, sandbox.token)
        answer = json.loads(body)
        assert status == 200 and answer["casUrl"] == f"{sandbox.endpoint}/cas"
        assert headers["X-Xet-Access-Token"] == answer["accessToken"] and answer["exp"] > time.time()
        assert headers["X-Xet-Cas-Url"] == headers["X-Xet-Endpoint"] == answer["casUrl"]
    url = f"{sandbox.endpoint}/api/models/{repo}/xet-write-token/main"
    assert raw("GET", url, sandbox.read_token)[0] == 403
    assert raw("GET", url, None)[0] == 401
    assert raw("GET", url.replace("/xet-write-token/", "/xet-read-token/"), sandbox.read_token)[0] == 200


def test_validate_yaml_route(sandbox: Sandbox) -> None:
    url = f"{sandbox.endpoint}/api/validate-yaml"
    good = json.dumps({"content": "---\na: 1\n---\n", "repoType": "model"}).encode()
    bad = json.dumps({"content": "---\n- a\n---\n", "repoType": "model"}).encode()
    json_type = {"Content-Type": "application/json"}
    assert raw("POST", url, sandbox.token, good, **json_type)[0] == 200
    assert raw("POST", url, sandbox.token, bad, **json_type)[0] == 400

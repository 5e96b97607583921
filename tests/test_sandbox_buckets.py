"""HF buckets in the sandbox, through the real `HfApi` and the real `hf buckets` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from huggingface_hub import BucketFile, HfApi
from huggingface_hub.errors import BucketNotFoundError, HfHubHTTPError

from hfjobs_magic.sandbox import Sandbox

HF_BIN = Path(sys.executable).parent / "hf"


@pytest.fixture
def bucket(api: HfApi, sandbox: Sandbox, unique_name: str) -> str:
    bucket_id = f"{sandbox.user}/{unique_name}"
    api.create_bucket(bucket_id)
    return bucket_id


def test_create_info_list_and_delete(api: HfApi, sandbox: Sandbox, unique_name: str) -> None:
    url = api.create_bucket(unique_name, private=True)  # no namespace: `me`
    assert url.bucket_id == f"{sandbox.user}/{unique_name}"
    assert url.url == f"{sandbox.endpoint}/buckets/{sandbox.user}/{unique_name}"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_bucket(url.bucket_id)
    assert err.value.response.status_code == 409
    assert api.create_bucket(url.bucket_id, exist_ok=True).bucket_id == url.bucket_id

    info = api.bucket_info(url.bucket_id)
    assert (info.id, info.private, info.size, info.total_files) == (url.bucket_id, True, 0, 0)
    assert url.bucket_id in [b.id for b in api.list_buckets()]
    assert [b.id for b in api.list_buckets(sandbox.user, search=unique_name)] == [url.bucket_id]

    api.update_bucket_settings(url.bucket_id, private=False)
    assert api.bucket_info(url.bucket_id).private is False

    api.delete_bucket(url.bucket_id)
    with pytest.raises(BucketNotFoundError):
        api.bucket_info(url.bucket_id)
    api.delete_bucket(url.bucket_id, missing_ok=True)


def test_move_bucket_and_ids_without_namespace(api: HfApi, sandbox: Sandbox, bucket: str) -> None:
    api.batch_bucket_files(bucket, add=[(b"kept", "a.txt")])
    api.move_bucket(from_id=bucket, to_id=f"{bucket}-moved")
    assert api.bucket_info(f"{bucket}-moved").total_files == 1
    with pytest.raises(BucketNotFoundError):
        api.bucket_info(bucket)
    for call in (api.bucket_info, api.delete_bucket):  # a name alone is no bucket id, as on the Hub
        with pytest.raises(HfHubHTTPError) as err:
            call(bucket.split("/")[1])
        assert err.value.response.status_code == 404
    api.update_bucket_settings(f"{bucket}-moved", private=True)
    anonymous = HfApi(endpoint=sandbox.endpoint, token=False)
    with pytest.raises(HfHubHTTPError) as err:
        anonymous.bucket_info(f"{bucket}-moved")
    assert err.value.response.status_code == 401


def test_missing_bucket_is_typed_404(sandbox: Sandbox) -> None:
    answer = httpx.get(f"{sandbox.endpoint}/api/buckets/{sandbox.user}/none",
                       headers={"authorization": f"Bearer {sandbox.token}"})
    assert answer.status_code == 404
    assert answer.headers["X-Error-Code"] == "RepoNotFound"


def test_private_bucket_is_invisible_to_another_user(api: HfApi, sandbox: Sandbox, unique_name: str) -> None:
    bucket_id = f"{sandbox.user}/{unique_name}"
    api.create_bucket(bucket_id, private=True)
    bob = HfApi(endpoint=sandbox.endpoint, token=sandbox.other_token)
    with pytest.raises(BucketNotFoundError):
        bob.bucket_info(bucket_id)
    with pytest.raises(BucketNotFoundError):
        list(bob.list_bucket_tree(bucket_id))
    assert bucket_id not in [b.id for b in bob.list_buckets(sandbox.user)]
    with pytest.raises(HfHubHTTPError) as err:
        bob.create_bucket(f"{sandbox.user}/{unique_name}-bob")
    assert err.value.response.status_code == 403


def test_read_token_cannot_write(read_api: HfApi, bucket: str, unique_name: str) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        read_api.create_bucket(f"{bucket}-2")
    assert err.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as err:
        read_api.delete_bucket(bucket)
    assert err.value.response.status_code == 403
    assert read_api.bucket_info(bucket).id == bucket


# -- files: these go through the sandbox's Xet CAS, with the client's default settings ----------------


def test_batch_add_copy_delete_tree_and_paths_info(api: HfApi, bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "weights.bin"
    local.write_bytes(os.urandom(300_000))
    api.batch_bucket_files(bucket, add=[(b"hello", "a.txt"), (local, "sub/deep/weights.bin")])

    root = {(type(e).__name__, e.path) for e in api.list_bucket_tree(bucket, recursive=False)}
    assert root == {("BucketFile", "a.txt"), ("BucketFolder", "sub")}
    assert {e.path for e in api.list_bucket_tree(bucket)} == {"a.txt", "sub/deep/weights.bin"}  # the Hub's default
    deep = {e.path for e in api.list_bucket_tree(bucket, prefix="sub", recursive=True)}
    assert deep == {"sub/deep", "sub/deep/weights.bin"}
    [info] = api.get_bucket_paths_info(bucket, ["sub/deep/weights.bin", "missing.txt"])
    assert (info.size, len(info.xet_hash)) == (300_000, 64)
    assert abs(info.mtime.timestamp() - local.stat().st_mtime) < 0.002  # the client's mtime, for sync

    api.batch_bucket_files(bucket, copy=[("bucket", bucket, info.xet_hash, "copy.bin")], delete=["a.txt"])
    files = {e.path: e for e in api.list_bucket_tree(bucket, recursive=True) if isinstance(e, BucketFile)}
    assert set(files) == {"copy.bin", "sub/deep/weights.bin"}
    assert files["copy.bin"].xet_hash == info.xet_hash

    api.download_bucket_files(bucket, [("copy.bin", str(tmp_path / "back.bin"))])
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
    assert api.bucket_info(bucket).total_files == 2


def test_sync_up_down_and_again_uploads_nothing(api: HfApi, bucket: str, tmp_path: Path) -> None:
    up = tmp_path / "up"
    (up / "nested").mkdir(parents=True)
    (up / "one.txt").write_text("one")
    (up / "nested" / "two.bin").write_bytes(os.urandom(100_000))
    first = api.sync_bucket(str(up), f"hf://buckets/{bucket}/run-1", quiet=True)
    assert first.summary()["uploads"] == 2
    again = api.sync_bucket(str(up), f"hf://buckets/{bucket}/run-1", quiet=True)
    assert again.summary()["uploads"] == 0

    down = tmp_path / "down"
    api.sync_bucket(f"hf://buckets/{bucket}/run-1", str(down), quiet=True)
    assert (down / "one.txt").read_text() == "one"
    assert (down / "nested" / "two.bin").read_bytes() == (up / "nested" / "two.bin").read_bytes()


def test_resolve_serves_bytes_and_ranges(api: HfApi, sandbox: Sandbox, bucket: str) -> None:
    api.batch_bucket_files(bucket, add=[(b"0123456789", "dir/digits.txt")])
    url = f"{sandbox.endpoint}/buckets/{bucket}/resolve/dir%2Fdigits.txt"
    headers = {"authorization": f"Bearer {sandbox.token}"}
    assert httpx.get(url, headers=headers).content == b"0123456789"
    assert httpx.get(url, headers={**headers, "range": "bytes=2-4"}).content == b"234"
    meta = api.get_bucket_file_metadata(bucket, "dir/digits.txt")
    assert meta.size == 10 and meta.xet_file_data.refresh_route.endswith(f"/api/buckets/{bucket}/xet-read-token")
    missing = httpx.head(f"{sandbox.endpoint}/buckets/{bucket}/resolve/nope.txt", headers=headers)
    assert (missing.status_code, missing.headers["X-Error-Code"]) == (404, "EntryNotFound")


def test_read_token_cannot_upload(read_api: HfApi, bucket: str) -> None:
    with pytest.raises(ConnectionError, match="403 Forbidden.*xet-write-token"):  # hf_xet's error for the token
        read_api.batch_bucket_files(bucket, add=[(b"x", "x.txt")])
    assert read_api.bucket_info(bucket).total_files == 0


def test_hf_buckets_cli(sandbox: Sandbox, tmp_path: Path, unique_name: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=sandbox.endpoint, HF_TOKEN=sandbox.token, HF_HOME=str(tmp_path / "hf-home"))
    bucket = f"{sandbox.user}/{unique_name}"
    local = tmp_path / "data"
    local.mkdir()
    (local / "f.txt").write_text("from the cli")

    def hf(*args: str) -> str:
        done = subprocess.run([str(HF_BIN), "buckets", *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"hf buckets {args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    hf("create", bucket, "--private")
    hf("sync", str(local), f"hf://buckets/{bucket}")
    assert "f.txt" in hf("list", bucket, "-R")
    hf("cp", f"hf://buckets/{bucket}/f.txt", str(tmp_path / "copy.txt"))
    assert (tmp_path / "copy.txt").read_text() == "from the cli"
    assert bucket in hf("info", bucket)
    hf("delete", bucket, "--yes")
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    with pytest.raises(BucketNotFoundError):
        api.bucket_info(bucket)

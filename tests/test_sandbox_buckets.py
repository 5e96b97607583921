"""HF buckets in the sandbox, through the real `HfApi` and the real `hf buckets` CLI."""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import BucketNotFoundError, HfHubHTTPError

from hfjobs_magic.sandbox import Sandbox
from hfjobs_magic.sandbox.accounts import OTHER_TOKEN


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


def test_missing_bucket_is_typed_404(sandbox: Sandbox) -> None:
    answer = httpx.get(f"{sandbox.endpoint}/api/buckets/{sandbox.user}/none",
                       headers={"authorization": f"Bearer {sandbox.token}"})
    assert answer.status_code == 404
    assert answer.headers["X-Error-Code"] == "RepoNotFound"


def test_private_bucket_is_invisible_to_another_user(api: HfApi, sandbox: Sandbox, unique_name: str) -> None:
    bucket_id = f"{sandbox.user}/{unique_name}"
    api.create_bucket(bucket_id, private=True)
    bob = HfApi(endpoint=sandbox.endpoint, token=OTHER_TOKEN)
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

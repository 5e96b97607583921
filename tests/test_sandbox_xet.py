"""The sandbox's Xet CAS, driven by the real clients in their default configuration (hf_xet on)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import hf_xet
import httpx
import pytest
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download

from hfjobs_magic.sandbox import Sandbox
from hfjobs_magic.sandbox.xet import XetStore, hashing, shard, xorb

HF_CLI = Path(sys.executable).with_name("hf")


def test_clients_run_with_xet_on() -> None:
    assert "HF_HUB_DISABLE_XET" not in os.environ and not constants.HF_HUB_DISABLE_XET


# -- hashing, against published vectors and the reference client ------------------------------------


def test_hash_strings_follow_the_spec_example() -> None:
    raw = bytes(range(32))
    reordered = [
        7,
        6,
        5,
        4,
        3,
        2,
        1,
        0,
        15,
        14,
        13,
        12,
        11,
        10,
        9,
        8,
        23,
        22,
        21,
        20,
        19,
        18,
        17,
        16,
        31,
        30,
        29,
        28,
        27,
        26,
        25,
        24,
    ]
    # the spec prints this string without the "10" of byte 16 (a typo: it has 62 digits)
    assert (
        hashing.to_hex(raw)
        == bytes(reordered).hex()
        == "07060504030201000f0e0d0c0b0a09081716151413121110" + "1f1e1d1c1b1a1918"
    )
    assert hashing.from_hex(hashing.to_hex(raw)) == raw


# (chunk hash, length) lists -> (xorb hash, file hash), from xet-core's aggregated_hashes reference test
A = ("cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100)
B = ("c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200)
C = ("0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300)
D = ("adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400)
REFERENCE = [
    ([("0" * 64, 0)], "0" * 64, "638a6bc391964a85939d48f008e8bdbae6a7975e7ca2d87a3ce2492f4e4d8a4c"),
    ([A], A[0], "8e16257caa3fe079d484d872a8975264b2ff683b0d6db9028cc7c0f968a45661"),
    (
        [A, B, C],
        "71ec1275fca074724e2dd666921b3277c7cee603e4d025bcab2d4050015be2bc",
        "54e55dccc6653c612bdb5576c5d3cb34bb31bc4e100248abccf4c908b3ef7715",
    ),
    (
        [A, A, A, A],
        "89f2ada89ff8c96763c6b25010e6dd76a4c05b1466207633ea559acf2093211b",
        "2cdba690d0e09563596e0cda626d43eb4c96ef1e994fe72d9b2f5a83cfcd36dd",
    ),
    (
        [A, B, A, B, C, D],
        "52c826f99507aa05d0b45e9837fa1709e0485425cfbcb1e80db3905cf98b3ee9",
        "91d21684db364c8883ab8209fa5eb2e781cf07f37e1fa43e731c30839afe422f",
    ),
]


@pytest.mark.parametrize(("chunks", "xorb_hash", "file_hash"), REFERENCE)
def test_merkle_and_file_hashes_match_reference_vectors(chunks: list, xorb_hash: str, file_hash: str) -> None:
    nodes = [(hashing.from_hex(h), n) for h, n in chunks]
    assert hashing.to_hex(hashing.merkle_root(nodes)) == xorb_hash
    assert hashing.to_hex(hashing.file_hash(nodes)) == file_hash


@pytest.mark.parametrize("size", [0, 1, 5000, 300_000, 3_000_000])
def test_ingest_hashes_files_as_hf_xet_does(size: int, tmp_path: Path) -> None:
    """Chunk boundaries, chunk hashes, the merkle tree and the file hash, all at once."""
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(size // 2) + b"ab" * (size // 4) + b"x" * (size % 4))
    store = XetStore(tmp_path / "xet")
    file_hash, stored = store.ingest_file(path)
    [reference] = hf_xet.hash_files([str(path)])
    assert (file_hash, stored) == (reference.hash, path.stat().st_size)
    out = tmp_path / "out.bin"
    store.write_file(file_hash, out)
    assert out.read_bytes() == path.read_bytes() and store.file_size(file_hash) == stored


def test_ingest_stores_known_chunks_once(tmp_path: Path) -> None:
    store, path = XetStore(tmp_path / "xet"), tmp_path / "data.bin"
    path.write_bytes(os.urandom(2_000_000))
    first, _ = store.ingest_file(path)
    before = xorb_files(store.root)
    assert store.ingest_file(path)[0] == first and xorb_files(store.root) == before
    path.write_bytes(path.read_bytes() + os.urandom(300_000))  # an appended tail: only it is new
    store.ingest_file(path)
    new = xorb_bytes(store.root) - sum(p.stat().st_size for p in before)
    assert 0 < new < 600_000
    with pytest.raises(KeyError):
        store.write_file("0" * 64, tmp_path / "nothing")
    assert store.file_size("0" * 64) is None


def xorb_files(root: Path) -> set[Path]:
    return {p for p in (root / "xorbs").glob("*/*") if not p.name.endswith(".json")} if root.exists() else set()


def xorb_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in xorb_files(root))


# -- end to end with huggingface_hub, hf and datasets -------------------------------------------------


def client_env(sb: Sandbox, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    return {
        **env,
        "HF_ENDPOINT": sb.endpoint,
        "HF_TOKEN": sb.token,
        "HF_HOME": str(home / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_upload_file_then_hf_hub_download_through_xet(sandbox: Sandbox, unique_name: str, tmp_path: Path) -> None:
    api, repo_id = HfApi(endpoint=sandbox.endpoint, token=sandbox.token), f"alice/{unique_name}"
    api.create_repo(repo_id)
    source = tmp_path / "weights.bin"
    source.write_bytes(data := os.urandom(1_500_000))
    api.upload_file(path_or_fileobj=source, path_in_repo="weights.bin", repo_id=repo_id)
    [entry] = [e for e in api.list_repo_tree(repo_id) if e.path == "weights.bin"]
    assert entry.lfs is not None and entry.size == len(data)
    url = hf_hub_url(repo_id, "weights.bin", endpoint=sandbox.endpoint)
    meta = get_hf_file_metadata(url, token=sandbox.token)
    assert meta.xet_file_data is not None and meta.xet_file_data.file_hash == hf_xet.hash_files([str(source)])[0].hash
    assert meta.xet_file_data.refresh_route.endswith(f"/api/models/{repo_id}/xet-read-token/main")
    path = hf_hub_download(repo_id, "weights.bin", endpoint=sandbox.endpoint, token=sandbox.token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == data
    plain = httpx.get(url, headers={"Authorization": f"Bearer {sandbox.token}"}, follow_redirects=True)
    assert plain.content == data  # the repo has the bytes too, for plain GETs
    route = f"{sandbox.endpoint}/api/models/{repo_id}/xet-read-token/main"
    assert plain.headers["X-Xet-Refresh-Route"] == route and plain.headers["Link"] == f'<{route}>; rel="xet-auth"'


def test_lfs_uploads_stay_plain(
    sandbox: Sandbox, unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    api, repo_id = HfApi(endpoint=sandbox.endpoint, token=sandbox.token), f"alice/{unique_name}"
    api.create_repo(repo_id)
    data = os.urandom(200_000)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo_id)
    url = hf_hub_url(repo_id, "w.bin", endpoint=sandbox.endpoint)
    assert get_hf_file_metadata(url, token=sandbox.token).xet_file_data is None
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    path = hf_hub_download(repo_id, "w.bin", endpoint=sandbox.endpoint, token=sandbox.token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == data


def test_hf_cli_upload_download_binary(sandbox: Sandbox, tmp_path: Path, unique_name: str) -> None:
    env, repo_id = client_env(sandbox, tmp_path), f"alice/{unique_name}"
    source = tmp_path / "blob.bin"
    source.write_bytes(os.urandom(4_000_000))
    run([str(HF_CLI), "upload", repo_id, str(source), "dir/blob.bin"], env)
    assert get_hf_file_metadata(hf_hub_url(repo_id, "dir/blob.bin", endpoint=sandbox.endpoint)).xet_file_data
    out = tmp_path / "out"
    run([str(HF_CLI), "download", repo_id, "dir/blob.bin", "--local-dir", str(out)], env)
    assert (out / "dir" / "blob.bin").read_bytes() == source.read_bytes()


def test_upload_folder_then_snapshot_download(sandbox: Sandbox, tmp_path: Path, unique_name: str) -> None:
    api, repo_id = HfApi(endpoint=sandbox.endpoint, token=sandbox.token), f"alice/{unique_name}"
    api.create_repo(repo_id, repo_type="dataset")
    source = tmp_path / "src"
    files = {f"part-{i:02d}/shard.bin": os.urandom(1000 + 7919 * i) for i in range(25)}
    files |= {f"notes/{i}.txt": f"note {i}\n".encode() for i in range(10)}
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    api.upload_folder(folder_path=source, repo_id=repo_id, repo_type="dataset")
    out = Path(snapshot_download(repo_id, repo_type="dataset", endpoint=sandbox.endpoint, cache_dir=tmp_path / "c"))
    assert {name: (out / name).read_bytes() for name in files} == files


def test_datasets_round_trip_through_xet(sandbox: Sandbox, tmp_path: Path, unique_name: str) -> None:
    env, repo_id = client_env(sandbox, tmp_path), f"alice/{unique_name}"
    rows = {"text": ["a", "b", "c"], "label": [0, 1, 0]}
    push = f"from datasets import Dataset\nDataset.from_dict({rows!r}).push_to_hub({repo_id!r})\n"
    load = (
        "import json; from datasets import load_dataset\n"
        f"print(json.dumps(load_dataset({repo_id!r})['train'].to_dict()))"
    )
    run([sys.executable, "-c", push], env)
    assert json.loads(run([sys.executable, "-c", load], env).stdout.strip().splitlines()[-1]) == rows
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    [parquet] = [f for f in api.list_repo_files(repo_id, repo_type="dataset") if f.endswith(".parquet")]
    url = hf_hub_url(repo_id, parquet, repo_type="dataset", endpoint=sandbox.endpoint)
    assert get_hf_file_metadata(url, token=sandbox.token).xet_file_data is not None


def test_second_upload_of_the_same_data_stores_no_new_xorbs(sandbox: Sandbox, tmp_path: Path, unique_name: str) -> None:
    """A fresh client (its own HF_HOME, so no local cache) finds the chunks by global dedupe."""
    root = sandbox.data_dir / "xet"
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(3_000_000))
    run([str(HF_CLI), "upload", f"alice/{unique_name}-a", str(data), "data.bin"], client_env(sandbox, tmp_path / "1"))
    before = xorb_files(root)
    run([str(HF_CLI), "upload", f"alice/{unique_name}-b", str(data), "x.bin"], client_env(sandbox, tmp_path / "2"))
    assert xorb_files(root) == before
    data.write_bytes(data.read_bytes() + os.urandom(500_000))  # only the new tail is sent
    run([str(HF_CLI), "upload", f"alice/{unique_name}-c", str(data), "y.bin"], client_env(sandbox, tmp_path / "3"))
    assert 0 < xorb_bytes(root) - sum(p.stat().st_size for p in before) < 1_000_000


# -- the CAS API itself: tokens, refusals, ranges ------------------------------------------------------


def cas_token(sb: Sandbox, repo_id: str, kind: str = "write", token: str | None = None) -> tuple[str, str]:
    url = f"{sb.endpoint}/api/models/{repo_id}/xet-{kind}-token/main"
    answer = httpx.get(url, headers={"Authorization": f"Bearer {token or sb.token}"})
    answer.raise_for_status()
    return answer.json()["casUrl"], answer.json()["accessToken"]


@pytest.fixture
def cas(sandbox: Sandbox, unique_name: str) -> tuple[str, dict[str, str]]:
    HfApi(endpoint=sandbox.endpoint, token=sandbox.token).create_repo(f"alice/{unique_name}")
    url, token = cas_token(sandbox, f"alice/{unique_name}")
    return url, {"Authorization": f"Bearer {token}"}


def make_xorb(*chunks: bytes) -> tuple[str, bytes]:
    body = b"".join(xorb.serialize_chunk(c) for c in chunks)
    return hashing.to_hex(hashing.merkle_root([(hashing.chunk_hash(c), len(c)) for c in chunks])), body


def test_a_read_token_gets_no_write_token(sandbox: Sandbox, unique_name: str) -> None:
    HfApi(endpoint=sandbox.endpoint, token=sandbox.token).create_repo(f"alice/{unique_name}")
    url = f"{sandbox.endpoint}/api/models/alice/{unique_name}/xet-write-token/main"
    assert httpx.get(url, headers={"Authorization": f"Bearer {sandbox.read_token}"}).status_code == 403
    assert cas_token(sandbox, f"alice/{unique_name}", "read", sandbox.read_token)[1]


def test_cas_routes_need_a_valid_token(sandbox: Sandbox, cas: tuple[str, dict[str, str]], unique_name: str) -> None:
    url, auth = cas
    xorb_hash, body = make_xorb(b"hello" * 1000)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": f"Bearer {sandbox.token}"}):
        assert httpx.post(f"{url}/v1/xorbs/default/{xorb_hash}", content=body, headers=headers).status_code == 401
        assert httpx.get(f"{url}/v1/reconstructions/{'0' * 64}", headers=headers).status_code == 401
        assert httpx.post(f"{url}/v1/shards", content=b"", headers=headers).status_code == 401
    _, read = cas_token(sandbox, f"alice/{unique_name}", "read")
    read_auth = {"Authorization": f"Bearer {read}"}
    assert httpx.post(f"{url}/v1/xorbs/default/{xorb_hash}", content=body, headers=read_auth).status_code == 403
    first = httpx.post(f"{url}/v1/xorbs/default/{xorb_hash}", content=body, headers=auth)
    again = httpx.post(f"{url}/v1/xorbs/default/{xorb_hash}", content=body, headers=auth)
    assert (first.json(), again.json()) == ({"was_inserted": True}, {"was_inserted": False})


def test_a_full_xorb_with_its_headers_is_taken(cas: tuple[str, dict[str, str]]) -> None:
    """64 MiB of chunks serialize to a little more than 64 MiB (headers); hf_xet sends such xorbs."""
    url, auth = cas
    xorb_hash, body = make_xorb(*(os.urandom(128 * 1024) for _ in range(512)))
    assert len(body) > xorb.MAX_XORB_BYTES
    answer = httpx.post(f"{url}/v1/xorbs/default/{xorb_hash}", content=body, headers=auth, timeout=120)
    assert answer.status_code == 200 and answer.json() == {"was_inserted": True}


def test_malformed_xorbs_are_refused_and_not_stored(sandbox: Sandbox, cas: tuple[str, dict[str, str]]) -> None:
    url, auth = cas
    good_hash, good = make_xorb(os.urandom(20_000), b"z" * 30_000)
    other_hash, _ = make_xorb(b"something else")
    garbage = bytes([0]) + (100).to_bytes(3, "little") + bytes([xorb.LZ4]) + (500).to_bytes(3, "little")
    bad_hash_1, _ = make_xorb(b"q" * 500)
    cases = {
        other_hash: good,  # a hash that is not the body's
        good_hash: good[:-10],  # the last chunk cut short
        bad_hash_1: garbage + os.urandom(100),  # LZ4 that does not decompress
        make_xorb(b"a")[0]: b"\x07" + good[1:],  # unknown chunk header version
    }
    before = xorb_files(sandbox.data_dir / "xet")
    for xorb_hash, body in cases.items():
        answer = httpx.post(f"{url}/v1/xorbs/default/{xorb_hash}", content=body, headers=auth)
        assert answer.status_code == 400, answer.text
        assert httpx.head(f"{url}/v1/xorbs/default/{xorb_hash}", headers=auth).status_code == 404
    assert xorb_files(sandbox.data_dir / "xet") == before
    assert not any((sandbox.data_dir / "xet" / "incoming").iterdir())  # no upload left half-kept either


def shard_body(xorb_hash: str, length: int, chunk_hashes: list[bytes], sha256: str | None = None) -> bytes:
    """A one-file, one-term shard, as a client serializes it (no footer), claiming `sha256` if given."""
    nodes = [(h, length // len(chunk_hashes)) for h in chunk_hashes]
    flags = shard.WITH_VERIFICATION | (shard.WITH_METADATA if sha256 else 0)
    head = hashing.file_hash(nodes) + struct.pack("<II", flags, 1) + bytes(8)
    term = hashing.from_hex(xorb_hash) + struct.pack("<IIII", 0, length, 0, len(chunk_hashes))
    check = hashing.range_hash(chunk_hashes) + bytes(16)
    meta = hashing.from_hex(sha256) + bytes(16) if sha256 else b""
    return shard.TAG + struct.pack("<QQ", 2, 0) + head + term + check + meta + shard.BOOKEND + shard.BOOKEND


def test_a_shard_naming_a_missing_xorb_is_refused(sandbox: Sandbox, cas: tuple[str, dict[str, str]]) -> None:
    url, auth = cas
    chunk = os.urandom(5000)
    xorb_hash, body = make_xorb(chunk)
    files_dir = sandbox.data_dir / "xet" / "files"
    before = set(files_dir.rglob("*")) if files_dir.exists() else set()
    valid = shard_body(xorb_hash, 5000, [hashing.chunk_hash(chunk)])
    missing = httpx.post(f"{url}/v1/shards", content=valid, headers=auth)
    assert missing.status_code == 400 and "not uploaded" in missing.text
    assert httpx.post(f"{url}/v1/xorbs/default/{xorb_hash}", content=body, headers=auth).status_code == 200
    wrong = httpx.post(f"{url}/v1/shards", content=shard_body(xorb_hash, 5000, [bytes(32)]), headers=auth)
    assert wrong.status_code == 400 and "verification" in wrong.text
    assert httpx.post(f"{url}/v1/shards", content=b"not a shard", headers=auth).status_code == 400
    assert (set(files_dir.rglob("*")) if files_dir.exists() else set()) == before
    good = httpx.post(f"{url}/v1/shards", content=valid, headers=auth)
    assert good.status_code == 200 and good.json() == {"result": 1}


def test_reconstruction_of_a_byte_range(sandbox: Sandbox, unique_name: str) -> None:
    api, repo_id = HfApi(endpoint=sandbox.endpoint, token=sandbox.token), f"alice/{unique_name}"
    api.create_repo(repo_id)
    data = os.urandom(700_000)
    api.upload_file(path_or_fileobj=data, path_in_repo="r.bin", repo_id=repo_id)
    meta = get_hf_file_metadata(hf_hub_url(repo_id, "r.bin", endpoint=sandbox.endpoint))
    assert meta.xet_file_data is not None
    file_hash = meta.xet_file_data.file_hash
    url, token = cas_token(sandbox, repo_id, "read")
    first, last = 123_456, 456_788
    for version in ("v1", "v2"):
        answer = httpx.get(
            f"{url}/{version}/reconstructions/{file_hash}",
            headers={"Authorization": f"Bearer {token}", "Range": f"bytes={first}-{last}"},
        ).json()
        got = b"".join(fetch_term(answer, term, version) for term in answer["terms"])
        assert got[answer["offset_into_first_range"] :][: last - first + 1] == data[first : last + 1]
    answer = httpx.get(
        f"{url}/v2/reconstructions/{file_hash}",
        headers={"Authorization": f"Bearer {token}", "Range": f"bytes={len(data)}-"},
    )
    assert answer.status_code == 416


def fetch_term(answer: dict, term: dict, version: str) -> bytes:
    """A term's bytes, fetched from the URL the answer signed (no token) and decompressed."""
    if version == "v1":
        [info] = [i for i in answer["fetch_info"][term["hash"]] if i["range"] == term["range"]]
        url, span = info["url"], info["url_range"]
    else:
        [info] = [i for i in answer["xorbs"][term["hash"]] if i["ranges"][0]["chunks"] == term["range"]]
        url, span = info["url"], info["ranges"][0]["bytes"]
    blob = httpx.get(url, headers={"Range": f"bytes={span['start']}-{span['end']}"})
    assert blob.status_code == 206
    chunks = xorb.read_chunks(blob.content, term["range"]["end"] - term["range"]["start"])
    assert sum(map(len, chunks)) == term["unpacked_length"]
    return b"".join(chunks)


def test_a_commit_gets_no_bytes_a_shard_lied_about(
    sandbox: Sandbox, cas: tuple[str, dict[str, str]], unique_name: str
) -> None:
    """A shard may claim any sha256 for its file: the commit checks the bytes before the repo takes them."""
    url, auth = cas
    chunk, claimed = os.urandom(5000), hashlib.sha256(b"someone else's file").hexdigest()
    xorb_hash, body = make_xorb(chunk)
    assert httpx.post(f"{url}/v1/xorbs/default/{xorb_hash}", content=body, headers=auth).status_code == 200
    lie = shard_body(xorb_hash, 5000, [hashing.chunk_hash(chunk)], sha256=claimed)
    assert httpx.post(f"{url}/v1/shards", content=lie, headers=auth).status_code == 200
    lines = [
        {"key": "header", "value": {"summary": "claims"}},
        {"key": "lfsFile", "value": {"path": "f.bin", "algo": "sha256", "oid": claimed, "size": 5000}},
    ]
    commit = httpx.post(
        f"{sandbox.endpoint}/api/models/alice/{unique_name}/commit/main",
        content=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
        headers={"Authorization": f"Bearer {sandbox.token}", "Content-Type": "application/x-ndjson"},
    )
    assert commit.status_code == 422 and claimed in commit.text
    true_sha = hashlib.sha256(chunk).hexdigest()
    honest = shard_body(xorb_hash, 5000, [hashing.chunk_hash(chunk)], sha256=true_sha)
    assert httpx.post(f"{url}/v1/shards", content=honest, headers=auth).status_code == 200
    lines[1]["value"]["oid"] = true_sha
    commit = httpx.post(
        f"{sandbox.endpoint}/api/models/alice/{unique_name}/commit/main",
        content=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
        headers={"Authorization": f"Bearer {sandbox.token}", "Content-Type": "application/x-ndjson"},
    )
    assert commit.status_code == 200
    download = httpx.get(f"{sandbox.endpoint}/alice/{unique_name}/resolve/main/f.bin")
    assert download.content == chunk and download.headers["X-Xet-Hash"]


def test_batch_reconstruction(sandbox: Sandbox, cas: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, auth = cas
    contents = [os.urandom(300_000), os.urandom(90_000)]
    hashes = []
    for i, data in enumerate(contents):
        (tmp_path / f"{i}.bin").write_bytes(data)
        hashes.append(sandbox.state.xet.ingest_file(tmp_path / f"{i}.bin")[0])
    query = httpx.get(f"{url}/v1/reconstructions", params=[("file_id", h) for h in hashes], headers=auth).json()
    keys = [{"prefix": "default", "hash": h} for h in hashes]
    posted = httpx.post(f"{url}/v1/reconstructions", json=keys, headers=auth).json()
    for answer in (query, posted):
        for file_hash, data in zip(hashes, contents, strict=True):
            terms = answer["files"][file_hash]
            assert b"".join(fetch_term(answer, term, "v1") for term in terms) == data
    missing = httpx.get(f"{url}/v1/reconstructions", params={"file_id": "0" * 64}, headers=auth)
    assert missing.status_code == 404


def test_cas_url_is_where_the_caller_reached_the_sandbox(sandbox: Sandbox, unique_name: str) -> None:
    """So a client on another machine (`hfjob sandbox --host ...`) gets a CAS URL it can reach."""
    HfApi(endpoint=sandbox.endpoint, token=sandbox.token).create_repo(f"alice/{unique_name}")
    answer = httpx.get(
        f"{sandbox.endpoint}/api/models/alice/{unique_name}/xet-read-token/main",
        headers={"Authorization": f"Bearer {sandbox.token}", "Host": "sandbox.example:8080"},
    )
    assert answer.json()["casUrl"] == "http://sandbox.example:8080/cas"


def test_hf_xet_uploads_empty_and_tiny_files(sandbox: Sandbox, unique_name: str, tmp_path: Path) -> None:
    """The bucket code uploads an empty `.keep` through Xet: a file with no terms at all."""
    HfApi(endpoint=sandbox.endpoint, token=sandbox.token).create_repo(f"alice/{unique_name}")
    url, token = cas_token(sandbox, f"alice/{unique_name}")
    infos = hf_xet.upload_bytes([b"", b"hello"], url, (token, int(time.time()) + 600), None, None, "model")
    for info, data in zip(infos, (b"", b"hello"), strict=True):
        assert sandbox.state.xet.file_size(info.hash) == len(data)
        sandbox.state.xet.write_file(info.hash, tmp_path / "out")
        assert (tmp_path / "out").read_bytes() == data


def test_a_commit_cannot_pull_in_another_repos_file_by_its_sha256(sandbox: Sandbox, unique_name: str) -> None:
    """Bob knows the sha256 of a file Alice uploaded to her private repo; naming it gets him nothing."""
    alice = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    alice.create_repo(f"alice/{unique_name}", private=True)
    data = os.urandom(300_000)
    alice.upload_file(path_or_fileobj=data, path_in_repo="secret.bin", repo_id=f"alice/{unique_name}")
    bob = HfApi(endpoint=sandbox.endpoint, token=sandbox.other_token)
    bob.create_repo(f"bob/{unique_name}")
    lines = [
        {"key": "header", "value": {"summary": "take it"}},
        {"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256", "oid": hashlib.sha256(data).hexdigest()}},
    ]
    commit = httpx.post(
        f"{sandbox.endpoint}/api/models/bob/{unique_name}/commit/main",
        content=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
        headers={"Authorization": f"Bearer {sandbox.other_token}", "Content-Type": "application/x-ndjson"},
    )
    assert commit.status_code == 422
    assert bob.list_repo_files(f"bob/{unique_name}") == [".gitattributes"]

"""S3 and GCS push targets, against moto (server mode) and gcp-storage-emulator on loopback.

The kernel side (`storage`: what landed, the checklist's probe, the settings a job gets),
the job side (`persist`'s stores), and whole jobs through the magic: success, crash, timeout.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from hfjobs_magic.cell import persist
from hfjobs_magic.cell.spec import build_spec, parse_line
from hfjobs_magic.jobs.runner import resolve_secrets
from hfjobs_magic.remote import storage
from hfjobs_magic.remote.hub import HubClient
from tests.emulators import gcs_server, s3_server
from tests.nbrun import environ, execute, final_record, sandbox_env, text_of

BUCKET = "hfjob-tests"
LOAD = "%load_ext hfjobs_magic"
SECRETS = {"s3": "--secrets AWS_ACCESS_KEY_ID --secrets AWS_SECRET_ACCESS_KEY",
           "gs": "--secrets GOOGLE_APPLICATION_CREDENTIALS"}


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    with s3_server(BUCKET) as env:
        yield env


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with gcs_server(BUCKET, tmp_path_factory.mktemp("gcs")) as env:
        yield env


@pytest.fixture(params=["s3", "gs"])
def cloud(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """(scheme, settings) for each kind of bucket."""
    return request.param, request.getfixturevalue("s3" if request.param == "s3" else "gcs")


# -- the settings a job gets ----------------------------------------------------------------------


def test_locations_parse():
    assert storage.Location.parse("s3://bucket/a/b/") == storage.Location("s3", "bucket", "a/b")
    assert storage.Location.parse("gs://bucket").list_prefix == ""
    with pytest.raises(ValueError, match="is not s3://"):
        storage.Location.parse("ftp://bucket/x")


def test_credentials_go_as_secrets_and_settings_as_env(tmp_path):
    key = tmp_path / "key.json"
    key.write_text('{"type": "service_account"}')
    local = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
             "GOOGLE_APPLICATION_CREDENTIALS": str(key), "STORAGE_EMULATOR_HOST": "http://127.0.0.1:8"}
    assert storage.job_secrets("s3", local) == {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
    assert storage.job_env("s3", local) == {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    assert storage.job_secrets("gs", local) == {"GOOGLE_APPLICATION_CREDENTIALS": '{"type": "service_account"}'}
    assert storage.job_env("gs", local) == {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:8"}
    assert storage.job_secrets("hub", local) == {} and storage.job_env(None, local) == {}
    assert storage.missing_credentials("s3", {}) == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    key_json = '{"project_id": "my-project", "private_key_id": "abc123def456", "private_key": "-----BEGIN"}'
    assert storage.masked_values("GOOGLE_APPLICATION_CREDENTIALS", key_json) == ["abc123def456", "-----BEGIN"]
    assert storage.masked_values("AWS_SECRET_ACCESS_KEY", "s3cr3t-value") == ["s3cr3t-value"]
    assert storage.missing_credentials("gs", {"STORAGE_EMULATOR_HOST": "x"}) == []


def test_the_submission_carries_the_targets_credentials_without_being_asked(s3):
    spec = build_spec(parse_line("--outputs out --push s3://bucket/run"))
    with environ(**s3):
        secrets = resolve_secrets(spec, HubClient("http://127.0.0.1:9", "hf_token"))
    assert secrets["AWS_SECRET_ACCESS_KEY"] == s3["AWS_SECRET_ACCESS_KEY"] and secrets["HF_TOKEN"] == "hf_token"
    assert "AWS_ENDPOINT_URL" not in secrets  # a setting, sent as plain env (see storage.SETTINGS)


# -- the checklist's probe and the watcher's listing ---------------------------------------------------


def test_probe_finds_a_reachable_writable_bucket_and_names_what_is_wrong(cloud):
    scheme, env = cloud
    with environ(**env):
        ok, message = storage.probe_target(f"{scheme}://{BUCKET}/probe", write=True)
        assert ok, message
        assert "reachable and writable" in message
        ok, message = storage.probe_target(f"{scheme}://no-such-bucket/x")
        assert not ok and "no such bucket" in message
    with environ(**{k: "" for k in env}):
        ok, message = storage.probe_target(f"{scheme}://{BUCKET}/x")
        assert not ok and "not set here" in message


def test_objects_since_lists_what_landed_after_the_job_started(cloud, tmp_path):
    scheme, env = cloud
    url = f"{scheme}://{BUCKET}/since-{tmp_path.name}"
    (tmp_path / "w.txt").write_text("weights")
    with environ(**env):
        before = datetime.now(timezone.utc) - timedelta(seconds=5)
        assert storage.objects_since(url, before) == []
        persist.open_store(url, "model").upload({"sub/w.txt": tmp_path / "w.txt"}, "hfjob j1: final push")
        landed = storage.objects_since(url, before)
        assert [o["title"] for o in landed] == [f"since-{tmp_path.name}/sub/w.txt"] and landed[0]["oid"]
        assert storage.objects_since(url, datetime.now(timezone.utc) + timedelta(seconds=5)) == []
        assert pushed_by(url, landed[0]["title"]) == "hfjob j1: final push"


def pushed_by(url: str, key: str) -> str:
    """The push message an object carries in its metadata."""
    where = storage.Location.parse(url)
    if where.scheme == "s3":
        return storage.s3_client().head_object(Bucket=where.bucket, Key=key)["Metadata"]["hfjob-push"]
    return storage.gcs_client().bucket(where.bucket).get_blob(key).metadata["hfjob-push"]


# -- the job side, in this process ---------------------------------------------------------------------


def test_a_stopped_wrapper_pushes_then_exits_143(cloud, tmp_path, monkeypatch, capsys):
    scheme, env = cloud
    monkeypatch.chdir(tmp_path)
    url = f"{scheme}://{BUCKET}/stopped-{tmp_path.name}"
    previous = signal.getsignal(signal.SIGTERM)
    with environ(**env):
        try:
            outputs = persist.Outputs("out", url).start()
            (tmp_path / "out" / "ckpt.bin").write_bytes(b"\0" * 1000)
            with pytest.raises(SystemExit) as stopped:
                outputs.close(persist.Terminated("SIGTERM"))
        finally:
            signal.signal(signal.SIGTERM, previous)
        assert stopped.value.code == 143
        assert [o["title"] for o in storage.objects_since(url, None)] == [f"stopped-{tmp_path.name}/ckpt.bin"]
    assert f"[hfjob] pushed 1 file (1.0 kB) to {url}" in capsys.readouterr().out
    manifest = [json.loads(line) for line in (tmp_path / persist.MANIFEST).read_text().splitlines()]
    assert [m["path"] for m in manifest] == ["out/ckpt.bin"]


# -- whole jobs through the magic ----------------------------------------------------------------------------


def test_success_crash_and_timeout_all_reach_the_bucket(sandbox, cloud, tmp_path):
    scheme, env = cloud
    base = f"{scheme}://{BUCKET}/{tmp_path.name}"
    head = f"--yes {SECRETS[scheme]} --outputs out --push"
    cells = [
        LOAD,
        f"%%hfjob --timeout 5m {head} {base}/ok\nimport os\nos.makedirs('out/a/b', exist_ok=True)\n"
        "open('out/a/b/deep.txt', 'w').write('deep')\nopen('out/top.txt', 'w').write('top')",
        f"%%hfjob --timeout 5m {head} {base}/crash\nopen('out/partial.txt', 'w').write('half')\n"
        "raise RuntimeError('crashed mid-run')",
        f"%%hfjob --timeout 6 {head} {base}/timeout\nimport time\nopen('out/ckpt.txt', 'w').write('w')\n"
        "print('checkpoint written', flush=True)\ntime.sleep(120)",
    ]
    nb, _ = execute(cells, sandbox_env(sandbox, tmp_path, **env), tmp_path / "n.ipynb", allow_errors=True)
    ok, crash, timeout = (final_record(cell) for cell in nb.cells[1:])
    assert ok["stage"] == "COMPLETED", text_of(nb.cells[1])
    assert "RuntimeError: crashed mid-run" in text_of(nb.cells[2]) and crash["stage"] == "ERROR"
    assert "timed out" in text_of(nb.cells[3]) and timeout["stage"] == "ERROR"
    landed = {record["push"][0]["repo_id"]: sorted(o["title"] for o in record["push"][0]["commits"])
              for record in (ok, crash, timeout) if record["push"][0]["verified"]}
    prefix = tmp_path.name
    assert landed == {f"{base}/ok": [f"{prefix}/ok/a/b/deep.txt", f"{prefix}/ok/top.txt"],
                      f"{base}/crash": [f"{prefix}/crash/partial.txt"],
                      f"{base}/timeout": [f"{prefix}/timeout/ckpt.txt"]}
    assert ok["push"][0]["repo_type"] == scheme and ok["push"][0]["reported"]


# What travels as a secret (masked, never shown) and what as plain env, as the submitted job holds it.
TRAVEL = {
    "s3": ({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
           {"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION"}),
    "gs": ({"GOOGLE_APPLICATION_CREDENTIALS"}, {"STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"}),
}


def test_credentials_reach_the_submitted_job_as_secrets_and_settings_as_env(sandbox, cloud, tmp_path):
    from huggingface_hub import HfApi

    scheme, env = cloud
    local = {**env, "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLE0SESSION", "AWS_REGION": "us-east-1"}
    cell = f"%%hfjob --timeout 5m --yes --detach --outputs out --push {scheme}://{BUCKET}/travel\nprint(1)"
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path, **local), tmp_path / "n.ipynb")
    assert err is None, err
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    job_id = final_record(nb.cells[1])["id"]
    job = api.inspect_job(job_id=job_id, namespace=sandbox.user)
    api.cancel_job(job_id=job_id, namespace=sandbox.user)
    secrets, settings = TRAVEL[scheme]
    assert set(job.secrets) == secrets | {"HF_TOKEN"}  # no --secrets flag: sent because the target needs them
    assert {k: job.environment[k] for k in settings} == {k: local[k] for k in settings}
    assert not (set(job.environment) & (secrets | {"HF_TOKEN"}))
    assert not (set(job.secrets) & settings)


# -- the checklist sees the bucket -----------------------------------------------------------------


def _checks(line: str, sandbox) -> dict:
    from hfjobs_magic.checks import context_for, run_checks

    cell = "print('results land in --outputs')"
    ctx = context_for(cell, build_spec(parse_line(line)), client=HubClient(sandbox.endpoint, sandbox.token))
    return {r.id: r for r in run_checks(ctx)}


def test_checklist_probes_the_bucket_with_the_credentials_the_job_gets(cloud, sandbox):
    scheme, env = cloud
    with environ(**env):
        good = _checks(f"--outputs out --push {scheme}://{BUCKET}/run", sandbox)
        missing = _checks(f"--outputs out --push {scheme}://no-such-bucket-here/run", sandbox)
    assert good["push_target"].status == "ok" and good["secrets"].status != "fail"
    assert missing["push_target"].status == "fail" and "no-such-bucket-here" in missing["push_target"].message


def test_checklist_fails_a_bucket_target_without_local_credentials(sandbox):
    with environ(AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY=""):
        found = _checks(f"--outputs out --push s3://{BUCKET}/run", sandbox)
    assert found["secrets"].status == "fail" and "AWS_ACCESS_KEY_ID" in found["secrets"].message
    assert found["push_target"].status == "fail"

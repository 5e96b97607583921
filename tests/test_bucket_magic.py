"""HF buckets and job volumes in `%%hfjob`: `--push hf://buckets/...`, `--volume`, their checks and export.

The flag and export cases are pure; the job cases run whole notebooks in a real kernel (nbclient)
against the sandbox, whose jobs get their volumes in a private mount namespace.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from huggingface_hub import HfApi
from IPython.core.error import UsageError

from hfjobs_magic.cell.script import build_script
from hfjobs_magic.cell.spec import JOB_WORKDIR, Defaults, build_spec, load_toml, parse_line
from hfjobs_magic.checks import CHECK_IDS, CheckResult, context_for, run_checks
from hfjobs_magic.remote.hub import HubClient
from hfjobs_magic.sandbox.volumes import namespace_support
from tests.nbrun import execute, final_record, sandbox_env, text_of

LOAD = "%load_ext hfjobs_magic"
FLAGS = "--timeout 5m --yes"
needs_volumes = pytest.mark.skipif(namespace_support()[1] is not None,
                                   reason=f"no private mount namespaces here: {namespace_support()[1]}")


def spec_of(line: str, defaults: Defaults | None = None):
    return build_spec(parse_line(line), defaults)


def bucket_files(api: HfApi, bucket_id: str, prefix: str | None = None) -> dict[str, int]:
    return {f.path: f.size for f in api.list_bucket_tree(bucket_id, prefix=prefix, recursive=True)
            if f.type == "file"}


# -- flags -----------------------------------------------------------------------------------------------


def test_a_bucket_push_with_outputs_is_a_volume_where_the_cell_writes():
    spec = spec_of("--outputs out/run --push hf://buckets/alice/results/exp-1/")
    assert spec.push_kind == "bucket" and spec.repo_type is None
    assert spec.outputs_mount is not None
    assert spec.outputs_mount.as_volume() == {"type": "bucket", "source": "alice/results",
                                              "mount_path": f"{JOB_WORKDIR}/out/run", "read_only": False,
                                              "path": "exp-1"}
    absolute = spec_of("--outputs /results --push hf://buckets/alice/results")
    assert absolute.outputs_mount.mount_path == "/results" and absolute.outputs_mount.path is None
    assert spec_of("--push hf://buckets/alice/results").outputs_mount is None  # the cell writes it itself


@pytest.mark.parametrize(("flag", "mount"), [
    ("hf://datasets/org/ds/train:/in", "hf://datasets/org/ds/train:/in:ro"),
    ("hf://org/model@v1:/models/m:ro", "hf://models/org/model@v1:/models/m:ro"),
    ("hf://buckets/alice/scratch/tmp:/scratch", "hf://buckets/alice/scratch/tmp:/scratch:rw"),
    ("hf://buckets/alice/refs:/refs:ro", "hf://buckets/alice/refs:/refs:ro"),
])
def test_volume_flags_read_as_hf_jobs_reads_them(flag, mount):
    """Buckets are read-write unless :ro, repos read-only; `text` is the canonical `hf jobs -v` form."""
    (volume,) = spec_of(f"--volume {flag}").volumes
    assert volume.text == mount
    assert volume.read_only is mount.endswith(":ro")


@pytest.mark.parametrize(("line", "says"), [
    ("--volume hf://datasets/org/ds:/in:rw", "mounted read-only; drop ':rw'"),
    ("--volume ./data:/data", "a local folder must be in a bucket first"),
    ("--volume hf://org/model", "Missing mount path"),
    ("--volume hf://org/model:/", "e.g. --volume hf://datasets/org/data:/data:ro"),
    ("--volume hf://org/a:/in --volume hf://org/b:/in", "two --volume flags both mount at /in"),
    ("--push hf://buckets/alice", "expected hf://buckets/NAMESPACE/NAME[/PREFIX]"),
    ("--push hf://datasets/alice/x", "hf://buckets/user/name[/prefix]"),
    ("--outputs ../up --push hf://buckets/alice/b", "name a folder below the working dir"),
    ("--outputs out --push hf://buckets/alice/b --sync-every 5m", "drop --sync-every"),
    ("--outputs out --push hf://buckets/alice/b --repo-type dataset", "has no repo type"),
    (f"--outputs out --push hf://buckets/alice/b --volume hf://buckets/alice/c:{JOB_WORKDIR}/out",
     "--outputs and a --volume both mount"),
])
def test_bad_bucket_and_volume_flags_say_what_to_write(line, says):
    with pytest.raises(UsageError) as err:
        spec_of(line)
    assert says in str(err.value)


def test_volume_defaults_come_from_the_config_and_a_sync_default_skips_buckets():
    defaults = Defaults(volumes=("hf://datasets/org/ds:/in",), sync_every="10m")
    spec = spec_of("--outputs out --push hf://buckets/alice/b --volume hf://buckets/alice/c:/c", defaults)
    assert [v.mount_path for v in spec.job_volumes] == ["/in", "/c", f"{JOB_WORKDIR}/out"]
    assert spec.sync_every_seconds is None


def test_help_lists_the_volume_flag_and_bucket_targets():
    from hfjobs_magic.cell.spec import _line_parser

    text = _line_parser().parser.format_help()
    assert "--volume" in text and "hf://buckets/" in text


def test_the_scan_sees_what_a_cell_writes_to_buckets():
    from hfjobs_magic.cell.scan import scan

    found = scan("""
from huggingface_hub import HfApi
import pandas as pd
api = HfApi()
api.create_bucket("alice/a", private=True, exist_ok=True)
api.batch_bucket_files("alice/a", add=[("model.bin", "model.bin")])
api.batch_bucket_files("alice/a", delete=["old.bin"])
api.sync_bucket("out", "hf://buckets/alice/b/run-1")
api.sync_bucket("hf://buckets/alice/c", "local")
api.copy_files("hf://datasets/alice/ds/x", "hf://buckets/alice/d/")
pd.DataFrame().to_parquet("hf://buckets/alice/e/x.parquet")
api.sync_bucket("out", dest)
""")
    buckets = [(p.call, p.repo_id, p.saves, p.creates) for p in found.pushes if p.kind == "bucket"]
    assert buckets == [
        ("api.create_bucket", "alice/a", False, True),
        ("api.batch_bucket_files", "alice/a", True, False),
        ("api.batch_bucket_files", "alice/a", False, False),  # deleting keeps nothing
        ("api.sync_bucket", "alice/b", True, False),
        ("api.copy_files", "alice/d", True, False),
        ("pd.DataFrame().to_parquet", "alice/e", True, False),
        ("api.sync_bucket", None, True, False),  # computed when the job runs
    ]
    assert not [p for p in found.pushes if p.kind == "hub"]  # hf://buckets/ is not a model repo named "buckets/..."


# -- export ----------------------------------------------------------------------------------------------


def test_export_carries_volumes_into_the_hf_jobs_table(tmp_path):
    line = ("%%hfjob --outputs out --push hf://buckets/alice/results/run-1 --volume hf://datasets/org/ds/train:/in "
            "--volume hf://buckets/alice/cache:/cache:ro")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"{line}\nopen('out/a.txt', 'w').write('x')")]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    from hfjobs_magic.commands import export_notebook

    assert export_notebook(str(path), str(tmp_path / "out")) == 0
    text = (tmp_path / "out" / "nb_cell0.py").read_text()
    block = "\n".join(ln[2:] for ln in text.split("# /// script\n", 1)[1].split("# ///", 1)[0].splitlines())
    table = load_toml(block)["tool"]["hf-jobs"]
    assert table["volumes"] == ["hf://datasets/org/ds/train:/in:ro", "hf://buckets/alice/cache:/cache:ro",
                                f"hf://buckets/alice/results/run-1:{JOB_WORKDIR}/out:rw"]
    from huggingface_hub.cli._cli_utils import parse_volumes  # what `hf jobs uv run` does with them

    assert [v.to_dict()["mountPath"] for v in parse_volumes(table["volumes"])] == ["/in", "/cache", "/hfjob/out"]


def test_the_script_runs_the_cell_where_its_folder_is_the_mount():
    spec = spec_of("--outputs out --push hf://buckets/alice/results")
    text = build_script("open('out/a.txt', 'w').write('x')", spec, variables={}).text
    assert f"mount='{JOB_WORKDIR}/out', workdir='{JOB_WORKDIR}'" in text
    assert "import huggingface_hub" in text


def test_views_count_bucket_files_and_sizes_and_read_the_wrappers_line():
    from hfjobs_magic.jobs.record import PushTarget
    from hfjobs_magic.jobs.watch import note_push_lines
    from hfjobs_magic.views.bundle import push_states

    target = PushTarget("hf://buckets/alice/res/run-1", "bucket")
    assert target.bucket == ("alice/res", "run-1") and target.where == "hf://buckets/alice/res/run-1"
    note_push_lines([target], ["[hfjob] pushed 2 files (5.0 kB) to hf://buckets/alice/res/run-1"])
    assert target.reported == [{"files": 2, "size": "5.0 kB", "ref": None}]
    target.commits = [{"oid": "a" * 64, "title": "run-1/a.bin", "date": "2026-11-29T15:00:00Z", "size": 4000},
                      {"oid": "b" * 64, "title": "run-1/b.txt", "date": "2026-11-29T15:00:01Z", "size": 1000}]
    target.verified = target.checked = True
    record = {"stage": "COMPLETED", "push": [target.as_json()]}
    assert push_states(record) == [("ok", "hf://buckets/alice/res/run-1: 2 file(s) (5.0 kB), verified; "
                                          "the job reported 1 push(es)")]


# -- checks, against the sandbox ---------------------------------------------------------------------------


def checks(sandbox, line: str, cell: str = "print('hi')", token: str | None = None) -> dict[str, CheckResult]:
    spec = spec_of(line)
    client = HubClient(sandbox.endpoint, token or sandbox.token)
    results = run_checks(context_for(cell, spec, client=client, variables={}))
    assert [r.id for r in results] == list(CHECK_IDS)
    assert all(r.fix for r in results if r.status == "fail"), "every failure says what to do"
    return {r.id: r for r in results}


def test_a_new_private_bucket_target_passes(sandbox, unique_name):
    found = checks(sandbox, f"--outputs out --push hf://buckets/{sandbox.user}/{unique_name}/run")
    assert found["push_target"].status == "ok", found["push_target"]
    assert "created (private) before the job starts" in found["push_target"].message
    assert found["persistence"].status == "ok" and "kept even if the job is killed" in found["persistence"].message


def test_a_public_bucket_as_push_target_is_a_warning(sandbox, api, unique_name):
    bucket = f"{sandbox.user}/{unique_name}"
    api.create_bucket(bucket, private=False)
    found = checks(sandbox, f"--outputs out --push hf://buckets/{bucket}")
    assert found["push_target"].status == "warn"
    assert "is public" in found["push_target"].message and "update_bucket_settings" in found["push_target"].fix


def test_a_bucket_in_a_namespace_you_cannot_write_fails(sandbox, unique_name):
    found = checks(sandbox, f"--outputs out --push hf://buckets/{sandbox.other_user}/{unique_name}")
    assert found["push_target"].status == "fail" and "cannot write to bucket" in found["push_target"].message
    volume = checks(sandbox, f"--allow-no-push --volume hf://buckets/big-corp/{unique_name}:/scratch")
    assert volume["push_target"].status == "fail"
    assert "you can only read in the big-corp" in volume["push_target"].message


def test_a_missing_read_only_repo_volume_fails_and_an_existing_one_passes(sandbox, api, unique_name):
    missing = checks(sandbox, f"--allow-no-push --volume hf://datasets/{sandbox.user}/{unique_name}:/in")
    assert missing["script"].status == "fail" and "does not exist" in missing["script"].message
    api.create_repo(f"{sandbox.user}/{unique_name}", repo_type="dataset")
    there = checks(sandbox, f"--allow-no-push --volume hf://datasets/{sandbox.user}/{unique_name}:/in")
    assert there["script"].status == "ok" and "mounted read-only at /in" in there["script"].message


def test_a_cell_that_syncs_to_a_bucket_is_persistence(sandbox, api, unique_name):
    bucket = f"{sandbox.user}/{unique_name}"
    api.create_bucket(bucket, private=True)
    cell = ("from huggingface_hub import HfApi\nimport os\nos.makedirs('out', exist_ok=True)\n"
            f"HfApi().sync_bucket('out', 'hf://buckets/{bucket}/run')")
    found = checks(sandbox, "", cell)
    assert found["persistence"].status == "ok" and f"writes to bucket {bucket}" in found["persistence"].message
    assert found["push_target"].status == "ok" and f"bucket {bucket} exists (private)" in found["push_target"].message
    assert found["secrets"].status == "ok"  # HF_TOKEN reaches the job, which writes to the Hub


# -- whole jobs on the sandbox ----------------------------------------------------------------------------


@needs_volumes
def test_outputs_into_a_bucket_end_to_end_with_verified_status(sandbox, api, tmp_path, unique_name):
    bucket = f"{sandbox.user}/{unique_name}"
    cell = (f"%%hfjob {FLAGS} --outputs out --push hf://buckets/{bucket}/run-1 --card\nimport os\n"
            "os.makedirs('out/logs', exist_ok=True)\nopen('out/logs/loss.csv', 'w').write('step,loss\\n1,0.5\\n')\n"
            "open('out/model.bin', 'wb').write(b'w' * 5000)\nprint('cwd', os.getcwd())")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    files = bucket_files(api, bucket)
    assert set(files) == {"run-1/logs/loss.csv", "run-1/model.bin", "run-1/README.md"}
    assert files["run-1/model.bin"] == 5000
    api.download_bucket_files(bucket, files=[("run-1/README.md", str(tmp_path / "card.md"))])
    assert "the cell finished" in (tmp_path / "card.md").read_text()
    assert api.bucket_info(bucket).private  # created by the magic, private
    target = final_record(nb.cells[1])["push"][0]
    assert target["repo_type"] == "bucket" and target["repo_id"] == f"hf://buckets/{bucket}/run-1"
    assert target["verified"] and target["checked"]
    sizes = {c["title"]: c["size"] for c in target["commits"]}
    assert sizes["run-1/model.bin"] == 5000 and sizes["run-1/logs/loss.csv"] == 16
    assert f"cwd {JOB_WORKDIR}" in text_of(nb.cells[1])
    assert json.dumps(target)  # the record stays JSON


@needs_volumes
def test_a_job_killed_with_sigkill_still_leaves_its_files_in_the_bucket(sandbox, api, tmp_path, unique_name):
    bucket = f"{sandbox.user}/{unique_name}"
    cell = (f"%%hfjob {FLAGS} --outputs ckpt --push hf://buckets/{bucket}\nimport os\n"
            "open('ckpt/step-100.bin', 'wb').write(b'c' * 12345)\nos.kill(os.getpid(), 9)")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "HfJobFailed"
    assert bucket_files(api, bucket) == {"step-100.bin": 12345}  # no final push ran; nothing was lost
    target = final_record(nb.cells[1])["push"][0]
    assert target["verified"] and [c["size"] for c in target["commits"]] == [12345]


@needs_volumes
def test_a_dataset_volume_is_readable_and_read_only_in_the_job(sandbox, api, tmp_path, unique_name):
    repo = f"{sandbox.user}/{unique_name}"
    api.create_repo(repo, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="train/rows.csv", repo_id=repo, repo_type="dataset")
    cell = (f"%%hfjob {FLAGS} --allow-no-push --volume hf://datasets/{repo}/train:/in\n"
            "print('rows:', open('/in/rows.csv').read().split())\n"
            "try:\n    open('/in/new.txt', 'w')\nexcept OSError as err:\n    print('write refused:', err.strerror)")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    out = text_of(nb.cells[1])
    assert "rows: ['a,b', '1,2']" in out and "write refused: Read-only file system" in out


@needs_volumes
def test_a_cell_syncing_to_the_push_bucket_is_verified(sandbox, api, tmp_path, unique_name):
    """Without --outputs: the magic creates the bucket, the cell writes it through Xet, the bucket confirms it."""
    bucket = f"{sandbox.user}/{unique_name}"
    cell = (f"%%hfjob {FLAGS} --push hf://buckets/{bucket}/run\nimport os\nfrom huggingface_hub import HfApi\n"
            "os.makedirs('res', exist_ok=True)\nopen('res/metrics.json', 'w').write('{\"acc\": 0.9}')\n"
            f"HfApi().sync_bucket('res', 'hf://buckets/{bucket}/run')")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    assert bucket_files(api, bucket) == {"run/metrics.json": 12}
    target = final_record(nb.cells[1])["push"][0]
    assert target["verified"] and [c["title"] for c in target["commits"]] == ["run/metrics.json"]


def test_a_bucket_the_cell_writes_on_its_own_is_verified_too(sandbox, api, tmp_path, unique_name):
    """No --push: the cell's own sync_bucket is its persistence, and the record asks that bucket what landed."""
    bucket = f"{sandbox.user}/{unique_name}"
    api.create_bucket(bucket, private=True)
    cell = (f"%%hfjob {FLAGS}\nimport os\nfrom huggingface_hub import HfApi\n"
            "os.makedirs('res', exist_ok=True)\nopen('res/metrics.json', 'w').write('{\"acc\": 0.9}')\n"
            f"HfApi().sync_bucket('res', 'hf://buckets/{bucket}/run')")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    (target,) = final_record(nb.cells[1])["push"]
    assert target["repo_id"] == f"hf://buckets/{bucket}" and target["repo_type"] == "bucket"
    assert not target["declared"] and target["verified"]
    assert [(c["title"], c["size"]) for c in target["commits"]] == [("run/metrics.json", 12)]


@needs_volumes
def test_hf_jobs_uv_run_of_an_exported_cell_mounts_its_volumes(sandbox, api, tmp_path, unique_name):
    """The exported [tool.hf-jobs] table is what `hf jobs uv run` mounts: the dataset read-only, the bucket as out/."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from hfjobs_magic.commands import export_notebook

    bucket, repo = f"{sandbox.user}/{unique_name}", f"{sandbox.user}/{unique_name}-data"
    api.create_bucket(bucket, private=True)  # `hf jobs` mounts what exists; the magic would create it
    api.create_repo(repo, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"42\n", path_in_repo="answer.txt", repo_id=repo, repo_type="dataset")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        f"%%hfjob --no-pin --outputs out --push hf://buckets/{bucket}/exp --volume hf://datasets/{repo}:/in\n"
        "answer = open('/in/answer.txt').read().strip()\nopen('out/answer.txt', 'w').write(answer)\n"
        "print('copied', answer)")]
    nbformat.write(nb, str(tmp_path / "nb.ipynb"))
    assert export_notebook(str(tmp_path / "nb.ipynb"), str(tmp_path)) == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=sandbox.endpoint, HF_TOKEN=sandbox.token, HF_HOME=str(tmp_path / "hf-home"))
    hf = Path(sys.executable).parent / "hf"
    done = subprocess.run([str(hf), "jobs", "uv", "run", "--secrets", "HF_TOKEN", str(tmp_path / "nb_cell0.py")],
                          env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "copied 42" in done.stdout
    assert bucket_files(api, bucket, "exp") == {"exp/answer.txt": 2}


def test_an_exported_cell_run_without_the_mount_uploads_its_folder_to_the_bucket(sandbox, api, tmp_path,
                                                                                unique_name):
    """Run where no bucket is mounted (plain python here), the wrapper uploads the folder, and the card, at the end."""
    import os
    import subprocess
    import sys

    bucket = f"{sandbox.user}/{unique_name}"
    spec = spec_of(f"--outputs out --push hf://buckets/{bucket}/exp --card")
    script = build_script("import os\nos.makedirs('out/sub', exist_ok=True)\n"
                          "open('out/sub/result.txt', 'w').write('done')", spec, variables={}).text
    (tmp_path / "job.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=sandbox.endpoint, HF_TOKEN=sandbox.token, HF_HOME=str(tmp_path / "hf-home"))
    done = subprocess.run([sys.executable, "job.py"], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"is pushed to hf://buckets/{bucket}/exp when the cell ends" in done.stdout
    assert set(bucket_files(api, bucket)) == {"exp/sub/result.txt", "exp/README.md"}
    assert api.bucket_info(bucket).private

"""Other real clients against the sandbox: the `datasets` library and the `hf` CLI.

Each runs in a subprocess, because huggingface_hub reads HF_ENDPOINT once, at
import: pointing a fresh process at the sandbox is how users (and jobs) do it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hfjobs_magic.sandbox import Sandbox

HF_CLI = Path(sys.executable).with_name("hf")


def client_env(sb: Sandbox, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    return {
        **env,
        "HF_ENDPOINT": sb.endpoint,
        "HF_TOKEN": sb.token,
        "HF_HOME": str(home / "hf-home"),
        "HF_DATASETS_CACHE": str(home / "datasets-cache"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }


def run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_datasets_push_to_hub_then_load_dataset(sandbox: Sandbox, tmp_path: Path, unique_name: str) -> None:
    repo_id = f"alice/{unique_name}"
    env = client_env(sandbox, tmp_path)
    rows = {"text": ["a", "b", "c"], "label": [0, 1, 0]}
    push = (
        "import sys; from datasets import Dataset\n"
        f"Dataset.from_dict({rows!r}).push_to_hub({repo_id!r}, token=sys.argv[1])\n"
    )
    load = (
        "import json; from datasets import load_dataset\n"
        f"print(json.dumps(load_dataset({repo_id!r})['train'].to_dict()))\n"
    )
    run([sys.executable, "-c", push, sandbox.token], env)
    loaded = run([sys.executable, "-c", load], env).stdout.strip().splitlines()[-1]
    assert __import__("json").loads(loaded) == rows
    from huggingface_hub import HfApi

    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    files = api.list_repo_files(repo_id, repo_type="dataset")
    assert "README.md" in files and any(f.startswith("data/train-") and f.endswith(".parquet") for f in files)
    assert api.dataset_info(repo_id).card_data["dataset_info"]["splits"][0]["num_examples"] == 3


def test_hf_cli_whoami_upload_download(sandbox: Sandbox, tmp_path: Path, unique_name: str) -> None:
    env = client_env(sandbox, tmp_path)
    assert "alice" in run([str(HF_CLI), "auth", "whoami"], env).stdout
    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    (source / "top.txt").write_text("top")
    (source / "nested" / "inner.txt").write_text("inner")
    repo_id = f"alice/{unique_name}"
    run([str(HF_CLI), "upload", repo_id, str(source), ".", "--repo-type", "dataset"], env)
    run([str(HF_CLI), "upload", repo_id, str(source / "top.txt"), "copy/top.txt", "--repo-type", "dataset"], env)
    out = tmp_path / "out"
    run([str(HF_CLI), "download", repo_id, "--repo-type", "dataset", "--local-dir", str(out)], env)
    assert (out / "top.txt").read_text() == "top"
    assert (out / "nested" / "inner.txt").read_text() == "inner"
    assert (out / "copy" / "top.txt").read_text() == "top"
    single = run([str(HF_CLI), "download", repo_id, "nested/inner.txt", "--repo-type", "dataset"], env)
    assert Path(single.stdout.strip().splitlines()[-1].split()[-1]).read_text() == "inner"


def test_hf_cli_with_read_token_cannot_upload(sandbox: Sandbox, tmp_path: Path, unique_name: str) -> None:
    env = {**client_env(sandbox, tmp_path), "HF_TOKEN": sandbox.read_token}
    (tmp_path / "f.txt").write_text("x")
    done = subprocess.run(
        [str(HF_CLI), "upload", f"alice/{unique_name}", str(tmp_path / "f.txt"), "f.txt"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "403" in done.stdout + done.stderr

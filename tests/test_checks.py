"""The pre-submission checklist, on cells a user would write, against the sandbox's accounts.

Real objects throughout: specs from `build_spec(parse_line(...))`, scripts from
`build_script` (through `context_for`), a `HubClient` talking HTTP to the sandbox.
"""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

from hfjobs_magic.cell.spec import build_spec, parse_line
from hfjobs_magic.checks import (
    CHECK_IDS,
    CheckResult,
    context_for,
    failing,
    run_checks,
    worst_case_cost,
)
from hfjobs_magic.checks.targets import Account
from hfjobs_magic.remote.hub import HubClient

FAKE_TOKEN = "hf_" + "AbCdEf0123456789" * 3  # matches the token pattern; known to no server


def run(sandbox, line: str, cell: str, *, token: str | None = None, client: HubClient | None | str = "default",
        variables=None, notebook_dir: Path | None = None, max_cost_usd: float | None = None,
        deadline_s: float | None = None) -> dict[str, CheckResult]:
    """The checklist of one cell, by check id."""
    if client == "default":
        client = HubClient(sandbox.endpoint, sandbox.token if token is None else token)
    spec = build_spec(parse_line(line))
    ctx = context_for(textwrap.dedent(cell).lstrip("\n"), spec, client=client, variables=variables,
                      notebook_dir=notebook_dir, max_cost_usd=max_cost_usd)
    if deadline_s is not None:
        ctx.deadline_s = deadline_s
    results = run_checks(ctx)
    assert [r.id for r in results] == list(CHECK_IDS)
    assert all(r.status in ("ok", "warn", "fail", "skip") and r.message for r in results)
    assert all(r.fix for r in results if r.status == "fail"), "every failure says what to do"
    return {r.id: r for r in results}


DATASET_CELL = """
    from datasets import Dataset
    ds = Dataset.from_dict({"text": ["a", "b"]})
    ds.push_to_hub("{repo}")
"""

TRAINER_CELL = """
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
    model = AutoModelForCausalLM.from_pretrained("sshleifer/tiny-gpt2")
    args = TrainingArguments(output_dir="out", push_to_hub=True, hub_model_id="{repo}")
    trainer = Trainer(model=model, args=args)
    trainer.train()
    trainer.push_to_hub()
"""

SFT_CELL = """
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer
    dataset = load_dataset("trl-lib/Capybara", split="train[:100]")
    config = SFTConfig(output_dir="qwen-sft", push_to_hub=True{hub_id})
    trainer = SFTTrainer(model="Qwen/Qwen2.5-0.5B", args=config, train_dataset=dataset)
    trainer.train()
"""

HFAPI_CELL = """
    import json, os
    from huggingface_hub import HfApi
    os.makedirs("results", exist_ok=True)
    with open("results/metrics.json", "w") as f:
        json.dump({{"accuracy": 0.9}}, f)
    api = HfApi()
    {create}api.upload_folder(folder_path="results", repo_id="{repo}"{repo_type})
"""

BOTO_CELL = """
    import boto3
    import pandas as pd
    pd.DataFrame({"x": [1, 2]}).to_csv("out.csv")
    s3 = boto3.client("s3")
    s3.upload_file("out.csv", "my-bucket", "runs/out.csv")
"""

REQUESTS_CELL = """
    import requests
    score = sum(range(10))
    requests.post("https://example.invalid/results", json={"score": score}, timeout=10)
"""

LOCAL_ONLY_CELL = """
    import torch
    model = torch.nn.Linear(4, 2)
    torch.save(model.state_dict(), "model.pt")
    print("saved")
"""


def dataset_cell(repo: str) -> str:
    return DATASET_CELL.replace("{repo}", repo)


# -- token -----------------------------------------------------------------------------------------


def test_token_ok_with_a_write_token(sandbox, unique_name):
    results = run(sandbox, "--timeout 10m", dataset_cell(f"alice/{unique_name}"))
    assert results["token"].status == "ok"
    assert "alice" in results["token"].message and "write" in results["token"].message
    assert not failing(list(results.values()))


def test_read_token_fails_token_and_push_target(sandbox, unique_name):
    results = run(sandbox, "", dataset_cell(f"alice/{unique_name}"), token=sandbox.read_token)
    assert results["token"].status == "fail"
    assert "read-only" in results["token"].message
    assert "write token" in results["token"].fix
    assert results["push_target"].status == "fail"
    assert "read-only" in results["push_target"].message


def test_read_token_is_enough_when_nothing_goes_to_the_hub(sandbox):
    cell = REQUESTS_CELL
    results = run(sandbox, "", cell, token=sandbox.read_token)
    assert results["token"].status == "ok"
    assert "read-only" in results["token"].message


def test_no_token_fails_and_hub_checks_degrade_to_warn(sandbox, unique_name):
    results = run(sandbox, "", dataset_cell(f"alice/{unique_name}"), token="")
    assert results["token"].status == "fail"
    assert "hf auth login" in results["token"].fix and "HF_TOKEN" in results["token"].fix
    assert results["push_target"].status == "warn"
    assert "could not verify" in results["push_target"].message
    assert results["secrets"].status == "fail"  # HF_TOKEN cannot reach a job that pushes


def test_no_client_at_all_does_not_crash(sandbox, unique_name):
    results = run(sandbox, "--flavor t4-small", dataset_cell(f"alice/{unique_name}"), client=None)
    assert results["token"].status == "fail"
    assert results["push_target"].status == "warn"
    assert results["flavor"].status == "warn" and "built-in" in results["flavor"].message


def test_a_token_the_hub_rejects_fails(sandbox, unique_name):
    results = run(sandbox, "", dataset_cell(f"alice/{unique_name}"), token="not-a-valid-token")
    assert results["token"].status == "fail"
    assert "401" in results["token"].message
    assert "hf auth login" in results["token"].fix


def test_job_namespace_you_do_not_belong_to_fails(sandbox, unique_name):
    results = run(sandbox, "--namespace bob", dataset_cell(f"alice/{unique_name}"))
    assert results["token"].status == "fail"
    assert "--namespace bob" in results["token"].message


def test_fine_grained_token_is_checked_against_the_target_namespace():
    whoami = {
        "name": "alice",
        "orgs": [{"name": "alice-lab", "roleInOrg": "write"}],
        "auth": {"accessToken": {"role": "fineGrained", "fineGrained": {"scoped": [
            {"entity": {"type": "user", "name": "alice"}, "permissions": ["repo.content.read", "repo.write"]},
            {"entity": {"type": "org", "name": "alice-lab"}, "permissions": ["repo.content.read"]},
        ]}}},
    }
    account = Account.from_whoami(whoami)
    assert account.token_problem("alice", "alice/x") is None
    assert "repo.write" in account.token_problem("alice-lab", "alice-lab/x")


# -- secrets ---------------------------------------------------------------------------------------


def test_secrets_ok_by_default(sandbox, unique_name):
    results = run(sandbox, "", dataset_cell(f"alice/{unique_name}"))
    assert results["secrets"].status == "ok"
    assert "HF_TOKEN" in results["secrets"].message


def test_token_literal_in_the_cell_fails_without_echoing_it(sandbox, unique_name):
    cell = f"""
        from huggingface_hub import HfApi
        api = HfApi(token="{FAKE_TOKEN}")
        api.upload_folder(folder_path=".", repo_id="alice/{unique_name}")
    """
    results = run(sandbox, "", cell)
    assert results["secrets"].status == "fail"
    assert "line 2" in results["secrets"].message
    for r in results.values():
        assert FAKE_TOKEN not in r.message + r.fix


def test_token_literal_in_env_or_secrets_flag_fails(sandbox, unique_name):
    cell = dataset_cell(f"alice/{unique_name}")
    env = run(sandbox, f"--env HF_TOKEN={FAKE_TOKEN}", cell)["secrets"]
    assert env.status == "fail" and "--env HF_TOKEN" in env.message
    flag = run(sandbox, f"--secrets MY_TOKEN={FAKE_TOKEN}", cell)["secrets"]
    assert flag.status == "fail" and "--secrets MY_TOKEN" in flag.fix
    for r in (env, flag):
        assert FAKE_TOKEN not in r.message + r.fix


def test_other_literal_secret_warns_and_is_not_echoed(sandbox, unique_name):
    r = run(sandbox, "--secrets WANDB_API_KEY=abc123secret", dataset_cell(f"alice/{unique_name}"))["secrets"]
    assert r.status == "warn"
    assert "abc123secret" not in r.message + r.fix
    assert "--secrets WANDB_API_KEY" in r.fix


def test_bare_secret_must_be_set_locally(sandbox, unique_name, monkeypatch):
    cell = dataset_cell(f"alice/{unique_name}")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    missing = run(sandbox, "--secrets WANDB_API_KEY", cell)["secrets"]
    assert missing.status == "fail" and "WANDB_API_KEY is not set" in missing.message
    monkeypatch.setenv("WANDB_API_KEY", "local-value")
    assert run(sandbox, "--secrets WANDB_API_KEY", cell)["secrets"].status == "ok"


def test_no_token_flag_with_a_hub_push_fails(sandbox, unique_name):
    r = run(sandbox, "--no-token", dataset_cell(f"alice/{unique_name}"))["secrets"]
    assert r.status == "fail" and "--no-token" in r.fix


def test_s3_write_without_aws_secrets_fails_naming_them(sandbox, monkeypatch):
    r = run(sandbox, "", BOTO_CELL)["secrets"]
    assert r.status == "fail"
    assert "AWS_ACCESS_KEY_ID" in r.fix and "AWS_SECRET_ACCESS_KEY" in r.fix
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local-secret")
    ok = run(sandbox, "--secrets AWS_ACCESS_KEY_ID --secrets AWS_SECRET_ACCESS_KEY", BOTO_CELL)["secrets"]
    assert ok.status == "ok"


def test_gcs_write_without_google_credentials_fails(sandbox):
    cell = """
        from google.cloud import storage
        bucket = storage.Client().bucket("my-bucket")
        bucket.blob("runs/out.txt").upload_from_string("done")
    """
    r = run(sandbox, "", cell)["secrets"]
    assert r.status == "fail" and "GOOGLE_APPLICATION_CREDENTIALS" in r.fix


def test_env_read_of_a_variable_the_job_lacks_fails(sandbox, unique_name):
    cell = textwrap.dedent("""
        import os
        import wandb
        wandb.login(key=os.environ["WANDB_API_KEY"])
    """) + textwrap.dedent(dataset_cell(f"alice/{unique_name}"))
    r = run(sandbox, "", cell)["secrets"]
    assert r.status == "fail" and "line 3" in r.message and "--secrets WANDB_API_KEY" in r.fix


# -- push target -----------------------------------------------------------------------------------------


def test_existing_repo_gets_a_commit(sandbox, api, unique_name):
    api.create_repo(f"alice/{unique_name}", repo_type="dataset")
    r = run(sandbox, "", dataset_cell(f"alice/{unique_name}"))["push_target"]
    assert r.status == "ok" and "a commit will be added" in r.message


def test_new_repo_will_be_created(sandbox, unique_name):
    r = run(sandbox, "", dataset_cell(f"alice/{unique_name}"))["push_target"]
    assert r.status == "ok" and "will be created" in r.message


def test_writable_org_is_ok(sandbox, unique_name):
    r = run(sandbox, "", dataset_cell(f"alice-lab/{unique_name}"))["push_target"]
    assert r.status == "ok"


def test_read_only_org_fails_naming_writable_namespaces(sandbox, unique_name):
    r = run(sandbox, "", dataset_cell(f"big-corp/{unique_name}"))["push_target"]
    assert r.status == "fail"
    assert "big-corp" in r.message and "read" in r.message
    assert "alice" in r.fix and "alice-lab" in r.fix


def test_someone_elses_namespace_fails(sandbox, unique_name):
    r = run(sandbox, "", dataset_cell(f"bob/{unique_name}"))["push_target"]
    assert r.status == "fail" and "bob" in r.message
    bob = run(sandbox, "", dataset_cell(f"bob/{unique_name}"), token=sandbox.other_token)["push_target"]
    assert bob.status == "ok"  # bob may push to his own namespace


def test_dataset_pushed_to_an_existing_model_repo_fails(sandbox, api, unique_name):
    api.create_repo(f"alice/{unique_name}")  # a model repo
    r = run(sandbox, "", dataset_cell(f"alice/{unique_name}"))["push_target"]
    assert r.status == "fail"
    assert "model repo" in r.message and "dataset" in r.message


def test_upload_without_repo_type_to_an_existing_dataset_fails(sandbox, api, unique_name):
    api.create_repo(f"alice/{unique_name}", repo_type="dataset")
    cell = HFAPI_CELL.format(create="", repo=f"alice/{unique_name}", repo_type="")
    r = run(sandbox, "", cell)["push_target"]
    assert r.status == "fail" and 'repo_type="dataset"' in r.fix
    fixed = HFAPI_CELL.format(create="", repo=f"alice/{unique_name}", repo_type=', repo_type="dataset"')
    assert run(sandbox, "", fixed)["push_target"].status == "ok"


def test_upload_folder_to_a_missing_repo_needs_create_repo(sandbox, unique_name):
    repo = f"alice/{unique_name}"
    missing = run(sandbox, "", HFAPI_CELL.format(create="", repo=repo, repo_type=""))["push_target"]
    assert missing.status == "fail" and "create_repo" in missing.fix
    create = f'api.create_repo("{repo}", exist_ok=True)\n    '
    assert run(sandbox, "", HFAPI_CELL.format(create=create, repo=repo, repo_type=""))["push_target"].status == "ok"


def test_repo_id_without_namespace_fails(sandbox):
    r = run(sandbox, "", dataset_cell("my-dataset"))["push_target"]
    assert r.status == "fail" and "no namespace" in r.message and "alice/my-dataset" in r.fix


def test_invalid_and_uppercase_repo_ids(sandbox, unique_name):
    bad = run(sandbox, "", dataset_cell("alice/bad--name"))["push_target"]
    assert bad.status == "fail" and "not a valid repo id" in bad.message
    upper = run(sandbox, "", dataset_cell(f"alice/Upper-{unique_name}"))["push_target"]
    assert upper.status == "warn" and "uppercase" in upper.message


def test_push_flag_type_must_match_the_cell(sandbox, unique_name):
    repo = f"alice/{unique_name}"
    r = run(sandbox, f"--push {repo}", dataset_cell(repo))["push_target"]
    assert r.status == "fail" and "--repo-type dataset" in r.fix
    assert run(sandbox, f"--push {repo} --repo-type dataset", dataset_cell(repo))["push_target"].status == "ok"


def test_trainer_with_hub_model_id(sandbox, unique_name):
    results = run(sandbox, "--flavor a10g-large --timeout 1h", TRAINER_CELL.replace("{repo}", f"alice/{unique_name}"))
    assert results["push_target"].status == "ok"
    assert results["persistence"].status == "ok"
    assert results["flavor"].status == "ok"


def test_sft_trainer_without_hub_model_id_warns(sandbox, unique_name):
    implicit = run(sandbox, "--flavor a10g-large", SFT_CELL.replace("{hub_id}", ""))
    assert implicit["push_target"].status == "warn" and "output_dir" in implicit["push_target"].message
    assert "hub_model_id" in implicit["push_target"].fix
    assert implicit["persistence"].status == "ok"
    named = run(sandbox, "--flavor a10g-large", SFT_CELL.replace("{hub_id}", f', hub_model_id="alice/{unique_name}"'))
    assert named["push_target"].status == "ok"


def test_repo_id_computed_at_run_time_warns(sandbox):
    cell = """
        import time
        from datasets import Dataset
        Dataset.from_dict({"t": [1]}).push_to_hub(f"alice/run-{time.time():.0f}")
    """
    r = run(sandbox, "", cell)["push_target"]
    assert r.status == "warn" and "computed when the job runs" in r.message


def test_push_flag_that_the_cell_never_pushes_to_warns(sandbox, unique_name):
    r = run(sandbox, f"--push alice/other-{unique_name} --repo-type dataset",
            dataset_cell(f"alice/{unique_name}"))["push_target"]
    assert r.status == "warn" and "receives nothing" in r.message


def test_unreachable_hub_gives_warn_not_ok(sandbox, unique_name):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    results = run(sandbox, "--flavor a10g-large", TRAINER_CELL.replace("{repo}", f"alice/{unique_name}"),
                  client=HubClient(closed, sandbox.token))
    for check_id in ("token", "push_target", "flavor"):
        assert results[check_id].status == "warn", results[check_id]
    assert "could not" in results["token"].message


def test_hub_errors_are_warns_that_say_so(sandbox, unique_name):
    sandbox.faults.fail_next(10, status=503, path_prefix="/api/datasets")
    r = run(sandbox, "", dataset_cell(f"alice/{unique_name}"))["push_target"]
    assert r.status == "warn" and "503" in r.message


def test_whoami_failure_is_a_warn(sandbox, unique_name):
    sandbox.faults.fail_next(1, status=502, path_prefix="/api/whoami-v2")
    r = run(sandbox, "", dataset_cell(f"alice/{unique_name}"))["token"]
    assert r.status == "warn" and "502" in r.message


def test_lookups_share_one_deadline(fresh_sandbox, unique_name):
    fresh_sandbox.faults.delay(1.0)
    results = run(fresh_sandbox, "", dataset_cell(f"alice/{unique_name}"), deadline_s=0.3)
    assert results["token"].status == "warn" and "within 0.3 s" in results["token"].message
    assert results["push_target"].status == "warn"
    assert results["flavor"].status == "warn"


# -- persistence -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", [
    DATASET_CELL.replace("{repo}", "alice/p"),
    TRAINER_CELL.replace("{repo}", "alice/p"),
    SFT_CELL.replace("{hub_id}", ""),
    HFAPI_CELL.format(create="", repo="alice/p", repo_type=""),
    BOTO_CELL,
    REQUESTS_CELL,
    """
        from huggingface_hub import CommitScheduler
        scheduler = CommitScheduler(repo_id="alice/p", folder_path="logs", every=5)
    """,
    """
        import pandas as pd
        pd.DataFrame({"x": [1]}).to_parquet("hf://datasets/alice/p/data.parquet")
    """,
    """
        from google.cloud import storage
        storage.Client().bucket("b").blob("k").upload_from_filename("model.pt")
    """,
    """
        import httpx
        with httpx.Client() as client:
            client.put("https://example.invalid/x", content=b"1")
    """,
], ids=["datasets", "trainer", "sft", "hfapi", "boto3", "requests", "scheduler", "hf-uri", "gcs", "httpx"])
def test_persistence_recognises_real_pushes(sandbox, cell):
    r = run(sandbox, "", cell)["persistence"]
    assert r.status == "ok", r
    assert "results leave the job" in r.message


def test_outputs_with_push_counts(sandbox, unique_name):
    r = run(sandbox, f"--outputs out --push alice/{unique_name}", LOCAL_ONLY_CELL)["persistence"]
    assert r.status == "ok" and "--outputs out" in r.message


def test_nothing_saved_fails_with_the_exact_fix(sandbox):
    r = run(sandbox, "", LOCAL_ONLY_CELL)["persistence"]
    assert r.status == "fail"
    assert r.message == ("nothing in this cell saves its results outside the job; they will be deleted when "
                         "it ends")
    assert "--outputs results --push alice/job-results" in r.fix and "--allow-no-push" in r.fix


def test_push_flag_alone_is_not_persistence(sandbox, unique_name):
    r = run(sandbox, f"--push alice/{unique_name}", LOCAL_ONLY_CELL)["persistence"]
    assert r.status == "fail" and "nothing writes to it" in r.message


def test_allow_no_push_turns_the_fail_into_a_warn(sandbox):
    r = run(sandbox, "--allow-no-push", LOCAL_ONLY_CELL)["persistence"]
    assert r.status == "warn" and "you chose to keep nothing" in r.message


def test_create_repo_alone_saves_nothing(sandbox, unique_name):
    cell = f"""
        from huggingface_hub import create_repo
        create_repo("alice/{unique_name}")
    """
    assert run(sandbox, "", cell)["persistence"].status == "fail"


# -- flavor ---------------------------------------------------------------------------------------------------


def test_flavor_ok_with_a_gpu_library(sandbox):
    r = run(sandbox, "--flavor a10g-large --allow-no-push", LOCAL_ONLY_CELL)["flavor"]
    assert r.status == "ok" and "A10G" in r.message and "$1.50/h" in r.message


def test_flavor_typo_names_the_closest(sandbox):
    r = run(sandbox, "--flavor a10g-larg", LOCAL_ONLY_CELL)["flavor"]
    assert r.status == "fail" and "a10g-large" in r.message
    assert r.fix == "--flavor a10g-large"


def test_gpu_flavor_without_gpu_library_warns(sandbox):
    cell = """
        import pandas as pd
        df = pd.DataFrame({"x": range(10)})
        df.to_csv("s3://bucket/x.csv")
    """
    r = run(sandbox, "--flavor a10g-large", cell)["flavor"]
    assert r.status == "warn" and "idle GPU" in r.message


def test_gpu_code_on_a_cpu_flavor_warns(sandbox):
    cell = """
        import torch
        model = torch.nn.Linear(4, 2).to("cuda")
    """
    r = run(sandbox, "--flavor cpu-basic", cell)["flavor"]
    assert r.status == "warn" and "line 2" in r.message and "t4-small" in r.fix


def test_hardware_list_unavailable_warns(sandbox):
    sandbox.faults.fail_next(1, status=503, path_prefix="/api/jobs/hardware")
    r = run(sandbox, "--flavor a10g-large", TRAINER_CELL.replace("{repo}", "alice/x"))["flavor"]
    assert r.status == "warn" and "built-in table" in r.message and "503" in r.message


# -- timeout ----------------------------------------------------------------------------------------------------


def test_timeout_shows_the_worst_case(sandbox):
    r = run(sandbox, "--flavor a10g-large --timeout 2h", LOCAL_ONLY_CELL)["timeout"]
    assert r.status == "ok" and "2h" in r.message and "$3.00" in r.message


def test_missing_timeout_warns_with_the_30_minute_cost(sandbox):
    r = run(sandbox, "--flavor a10g-large", LOCAL_ONLY_CELL)["timeout"]
    assert r.status == "warn" and "30 minutes" in r.message and "$0.75" in r.message
    assert "--timeout" in r.fix


def test_worst_case_above_max_cost_fails(sandbox):
    r = run(sandbox, "--flavor a10g-large --timeout 2h", LOCAL_ONLY_CELL, max_cost_usd=1.0)["timeout"]
    assert r.status == "fail" and "max_cost_usd" in r.message
    assert "--timeout 40m" in r.fix
    under = run(sandbox, "--flavor a10g-large --timeout 30m", LOCAL_ONLY_CELL, max_cost_usd=1.0)["timeout"]
    assert under.status == "ok"


def test_worst_case_cost_helper(sandbox):
    client = HubClient(sandbox.endpoint, sandbox.token)
    assert worst_case_cost(build_spec(parse_line("--flavor a10g-large --timeout 2h")), client) == pytest.approx(3.0)
    assert worst_case_cost(build_spec(parse_line("--flavor a10g-large")), None) == pytest.approx(0.75)
    assert worst_case_cost(build_spec(parse_line("--flavor nope")), client) is None
    assert client.known_hardware() is None  # the helper never called the Hub


# -- script -----------------------------------------------------------------------------------------------------


def test_script_ok_and_shell_commands_noted(sandbox):
    cell = """
        !nvidia-smi
        import torch
        torch.save(torch.zeros(1), "x.pt")
    """
    r = run(sandbox, "--allow-no-push", cell)["script"]
    assert r.status == "ok" and "subprocess" in r.message


def test_syntax_error_fails_with_the_line(sandbox):
    cell = """
        import torch
        for epoch in range(3)
            print(epoch)
    """
    results = run(sandbox, "", cell)
    assert results["script"].status == "fail"
    assert "line 2" in results["script"].message
    assert results["persistence"].status == "warn"  # not judged on a cell that does not parse


def test_ipython_only_syntax_fails(sandbox):
    cell = """
        x = list(range(1000))
        %timeit sum(x)
    """
    r = run(sandbox, "--allow-no-push", cell)["script"]
    assert r.status == "fail" and "%timeit" in r.message


def test_reading_a_file_beside_the_notebook_warns(sandbox, tmp_path):
    (tmp_path / "train.csv").write_text("x\n1\n")
    cell = """
        import pandas as pd
        df = pd.read_csv("train.csv")
        df.to_csv("s3://bucket/out.csv")
    """
    r = run(sandbox, "", cell, notebook_dir=tmp_path)["script"]
    assert r.status == "warn" and "train.csv (line 2)" in r.message
    assert run(sandbox, "", cell, notebook_dir=tmp_path / "elsewhere")["script"].status == "ok"


def test_a_file_the_cell_writes_itself_is_fine(sandbox, tmp_path):
    (tmp_path / "notes.txt").write_text("old local copy")
    cell = """
        with open("notes.txt", "w") as f:
            f.write("made in the job")
        print(open("notes.txt").read())
    """
    assert run(sandbox, "--allow-no-push", cell, notebook_dir=tmp_path)["script"].status == "ok"


# -- dependencies -----------------------------------------------------------------------------------------------


def test_dependencies_resolved(sandbox, unique_name):
    r = run(sandbox, "", dataset_cell(f"alice/{unique_name}"))["dependencies"]
    assert r.status == "ok" and "datasets" in r.message


def test_unresolved_import_warns_with_the_with_flag(sandbox):
    cell = """
        import made_up_helpers_pkg
        made_up_helpers_pkg.run()
    """
    r = run(sandbox, "--allow-no-push", cell)["dependencies"]
    assert r.status == "warn" and "--with made-up-helpers-pkg" in r.fix
    declared = run(sandbox, "--allow-no-push --with made-up-helpers-pkg", cell)["dependencies"]
    assert declared.status == "ok"


def test_local_module_beside_the_notebook_warns(sandbox, tmp_path):
    (tmp_path / "helpers.py").write_text("def run():\n    pass\n")
    cell = """
        import helpers
        helpers.run()
    """
    r = run(sandbox, "--allow-no-push", cell, notebook_dir=tmp_path)["dependencies"]
    assert r.status == "warn" and "helpers" in r.message and "beside the notebook" in r.message


# -- variables -------------------------------------------------------------------------------------------------


VARS_CELL = """
    import json
    from huggingface_hub import HfApi
    result = {"lr": lr, "epochs": epochs}
    HfApi().upload_file(path_or_fileobj=json.dumps(result).encode(), path_in_repo="r.json", repo_id="alice/v")
"""


def test_variables_skipped_without_a_kernel(sandbox):
    r = run(sandbox, "", VARS_CELL)["variables"]
    assert r.status == "skip"


def test_kernel_variables_not_sent_fail_with_vars_fix(sandbox):
    r = run(sandbox, "", VARS_CELL, variables={"lr": 3e-4, "epochs": 3})["variables"]
    assert r.status == "fail"
    assert "lr (line 3)" in r.message and "epochs" in r.message
    assert r.fix == "Add --vars lr,epochs."
    sent = run(sandbox, "--vars lr,epochs", VARS_CELL, variables={"lr": 3e-4, "epochs": 3})["variables"]
    assert sent.status == "ok"


def test_modules_and_objects_from_the_notebook_are_not_sent_with_vars(sandbox):
    import numpy

    cell = """
        arr = np.arange(3)
        print(model_fn(arr))
    """
    r = run(sandbox, "--allow-no-push", cell, variables={"np": numpy, "model_fn": lambda x: x})["variables"]
    assert r.status == "fail"
    assert "import numpy as np" in r.fix
    assert "model_fn (line 2)" in r.message and "plain values" in r.message
    assert "--vars" not in r.fix


def test_names_defined_nowhere_fail(sandbox):
    r = run(sandbox, "--vars lr", VARS_CELL, variables={"lr": 3e-4})["variables"]
    assert r.status == "fail" and "epochs" in r.message and "NameError" in r.message


def test_vars_flag_naming_a_missing_variable_fails(sandbox):
    r = run(sandbox, "--vars lr,epochs", VARS_CELL, variables={"lr": 3e-4})["variables"]
    assert r.status == "fail" and "epochs" in r.message


def test_vars_value_resolves_a_repo_id(sandbox, unique_name):
    cell = """
        from datasets import Dataset
        Dataset.from_dict({"t": [1]}).push_to_hub(repo)
    """
    r = run(sandbox, "--vars repo", cell, variables={"repo": f"alice-lab/{unique_name}"})["push_target"]
    assert r.status == "ok" and f"alice-lab/{unique_name}" in r.message


# -- the look-ups themselves ------------------------------------------------------------------------------------


def test_run_parallel_returns_by_the_deadline_and_names_failures():
    import threading

    from hfjobs_magic.checks.lookups import run_parallel

    release = threading.Event()

    def broken():
        raise ConnectionError(f"refused while sending {FAKE_TOKEN}")

    answers = run_parallel({"fast": lambda: 42, "hung": release.wait, "broken": broken}, deadline_s=0.2)
    release.set()
    assert answers["fast"].ok and answers["fast"].value == 42
    assert not answers["hung"].ok and "within 0.2 s" in answers["hung"].failure
    assert "ConnectionError" in answers["broken"].failure
    assert FAKE_TOKEN not in answers["broken"].failure


def test_concurrent_first_calls_fetch_whoami_once(sandbox):
    import threading

    from hfjobs_magic.checks.lookups import gather

    client = HubClient(sandbox.endpoint, sandbox.token)
    calls = []
    real = client.api.whoami
    client.api.whoami = lambda *a, **k: calls.append(1) or real(*a, **k)  # count the real fetches
    threads = [threading.Thread(target=gather, args=(client, [])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1

"""What the README promises of `%%hfjob`, each through the real magic in a real kernel (nbclient) on the sandbox.

Every `%config` option it lists, `[tool.hfjobs_magic]` beside the notebook, `%%hfjob?`, the `%hfjob_ps`
columns, `HfJobCheckError` naming every failing check, and the flags that must reach the submitted job
(inspected through `HfApi`, not through our own record).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
from huggingface_hub import HfApi

from tests.nbrun import execute, final_record, interrupt_when_logged, records, sandbox_env, text_of

LOAD = "%load_ext hfjobs_magic"
QUIET = "--allow-no-push --timeout 5m --yes"
README = Path(__file__).resolve().parents[1] / "README.md"


def api_of(sb) -> HfApi:
    return HfApi(endpoint=sb.endpoint, token=sb.token)


def timeout_of(sb, job_id: str, namespace: str) -> int:
    """The job's timeout as the Jobs API answers it (`JobInfo` does not carry it)."""
    answer = httpx.get(f"{sb.endpoint}/api/jobs/{namespace}/{job_id}", headers={"authorization": f"Bearer {sb.token}"},
                       timeout=30)
    return answer.json()["timeoutSeconds"]


def job_count(sb) -> int:
    return len(list(api_of(sb).list_jobs(namespace=sb.user)))


# -- %config -----------------------------------------------------------------------------------------------------


def test_config_auto_confirm_log_lines_and_history_file(sandbox, tmp_path):
    history = tmp_path / "configured-history.jsonl"
    cells = [
        LOAD,
        "%config HFJobMagics.auto_confirm = True",  # consent for an unattended run, instead of --yes
        "%config HFJobMagics.log_lines = 5",
        f"%config HFJobMagics.history_file = {str(history)!r}",
        "%%hfjob --allow-no-push --timeout 5m\nfor i in range(20):\n    print('line', i)",
    ]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    record = final_record(nb.cells[4])
    assert record["stage"] == "COMPLETED"
    assert record["log_tail"] == [f"line {i}" for i in range(15, 20)]
    assert [r["log_tail"] for r in records(nb.cells[4]) if len(r["log_tail"]) > 5] == []
    assert record["id"] in history.read_text()  # the configured file, not HFJOB_HISTORY
    assert not (tmp_path / "history.jsonl").exists()


def test_config_pass_token_pin_and_max_cost(sandbox, tmp_path):
    before = job_count(sandbox)
    cells = [
        LOAD,
        "%config HFJobMagics.pass_token = False",
        f"%%hfjob {QUIET}\nimport os\nprint('has token', 'HF_TOKEN' in os.environ)",
        "%config HFJobMagics.pin = False",
        "%%hfjob --dry-run --allow-no-push\nimport yaml\nprint(yaml.safe_dump([1]))",
        "%config HFJobMagics.pin = True",
        "%%hfjob --dry-run --allow-no-push\nimport yaml\nprint(yaml.safe_dump([1]))",
        "%config HFJobMagics.max_cost_usd = 1.0",
        "%%hfjob --flavor a10g-large --timeout 2h --allow-no-push --yes\nprint('too dear')",
    ]
    nb, _ = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb", allow_errors=True)
    assert "has token False" in text_of(nb.cells[2])
    job = api_of(sandbox).inspect_job(job_id=final_record(nb.cells[2])["id"], namespace=sandbox.user)
    assert "HF_TOKEN" not in (job.secrets or {})
    assert '"pyyaml",' in text_of(nb.cells[4]) and "pyyaml==" not in text_of(nb.cells[4])
    assert re.search(r'"pyyaml==\d+\.\d+', text_of(nb.cells[6]))
    refused = text_of(nb.cells[8])
    assert "HfJobCheckError" in refused and "max_cost_usd" in refused and "timeout" in refused
    assert job_count(sandbox) == before + 1  # the job of cell 2 only


def test_config_defaults_reach_the_job_and_its_script(sandbox, tmp_path):
    cells = [
        LOAD,
        "%config HFJobMagics.namespace = 'alice-lab'",
        "%config HFJobMagics.labels = {'team': 'from-config'}",
        "%config HFJobMagics.env = {'GREETING': 'from-config'}",
        "%config HFJobMagics.secrets = ['MY_KEY']",
        "%config HFJobMagics.timeout = '6m'",
        "%config HFJobMagics.image = 'ghcr.io/astral-sh/uv:python3.11-bookworm'",
        "%config HFJobMagics.allow_no_push = True",
        "%%hfjob --yes\nimport os\nprint('env', os.environ['GREETING'], os.environ['MY_KEY'])",
        "%config HFJobMagics.with_deps = ['pyyaml<7']",
        "%config HFJobMagics.python = '3.11'",
        "%%hfjob --dry-run\nprint(1)",
    ]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path, MY_KEY="configured-secret"), tmp_path / "n.ipynb")
    assert err is None, err
    assert "env from-config ***" in text_of(nb.cells[8])  # the secret arrived, and is masked
    job_id = final_record(nb.cells[8])["id"]
    job = api_of(sandbox).inspect_job(job_id=job_id, namespace="alice-lab")
    assert job.labels["team"] == "from-config" and job.environment["GREETING"] == "from-config"
    assert set(job.secrets) == {"HF_TOKEN", "MY_KEY"}
    assert job.docker_image == "ghcr.io/astral-sh/uv:python3.11-bookworm"
    assert timeout_of(sandbox, job_id, "alice-lab") == 360
    script = text_of(nb.cells[11])
    assert '"pyyaml<7"' in script and 'requires-python = "==3.11.*"' in script


def test_config_cancel_on_interrupt_cancels_the_job(sandbox, tmp_path):
    cells = [
        LOAD,
        "%config HFJobMagics.cancel_on_interrupt = True",
        interrupt_when_logged("started-to-be-cancelled"),
        f"%%hfjob {QUIET}\nimport time\nprint('started-to-be-cancelled', flush=True)\ntime.sleep(120)",
    ]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "KeyboardInterrupt"
    job_id = final_record(nb.cells[3])["id"]
    assert f"job {job_id} was cancelled" in text_of(nb.cells[3])
    assert api_of(sandbox).wait_for_job(job_id, namespace=sandbox.user, timeout=60).status.stage == "CANCELED"


def test_pyproject_beside_the_notebook_gives_defaults(sandbox, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.hfjobs_magic]\nflavor = "cpu-upgrade"\ntimeout = "7m"\nallow-no-push = true\n'
        'labels = { team = "nlp" }\nenv = { GREETING = "from-pyproject" }\n')
    cells = [LOAD, "%%hfjob --yes\nimport os\nprint('greeting', os.environ['GREETING'])"]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    assert "greeting from-pyproject" in text_of(nb.cells[1])
    job_id = final_record(nb.cells[1])["id"]
    job = api_of(sandbox).inspect_job(job_id=job_id, namespace=sandbox.user)
    assert job.flavor == "cpu-upgrade" and job.labels["team"] == "nlp"
    assert job.environment["GREETING"] == "from-pyproject"
    assert timeout_of(sandbox, job_id, sandbox.user) == 420


# -- help, listing, refusal ----------------------------------------------------------------------------------------


def readme_flags() -> list[str]:
    """The flags the README's table of `%%hfjob` flags lists."""
    table = README.read_text().split("### Flags of `%%hfjob`", 1)[1].split("\n\n", 2)[1]
    return sorted({flag for row in table.splitlines()[2:] for flag in re.findall(r"(--[a-z-]+)", row.split("|")[1])})


def test_hfjob_help_shows_every_flag_the_readme_lists(sandbox, tmp_path):
    replies: list[dict] = []
    nb, err = execute([LOAD, "%%hfjob?"], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb", replies=replies)
    assert err is None, err
    pages = [p["data"]["text/plain"] for p in replies[1]["content"]["payload"] if p.get("source") == "page"]
    assert len(pages) == 1
    shown = re.sub(r"\x1b\[[0-9;]*m", "", pages[0])
    flags = readme_flags()
    assert len(flags) >= 20 and "--no-token" in flags
    assert [flag for flag in flags if flag not in shown] == []
    assert "Run this cell on Hugging Face Jobs hardware" in shown


def test_hfjob_ps_shows_every_column(sandbox, tmp_path):
    env = sandbox_env(sandbox, tmp_path, JPY_SESSION_NAME="ps-columns.ipynb")
    cells = [LOAD, "%%hfjob --allow-no-push --timeout 5m --yes --flavor cpu-upgrade\nprint('for ps')", "%hfjob_ps"]
    nb, err = execute(cells, env, tmp_path / "n.ipynb")
    assert err is None, err
    record = final_record(nb.cells[1])
    lines = text_of(nb.cells[2]).splitlines()
    assert lines[0].split() == ["JOB", "ID", "STAGE", "FLAVOR", "CREATED", "NOTEBOOK", "/", "CELL"]
    row = next(line for line in lines if line.startswith(record["id"]))
    job_id, stage, flavor, *created, notebook, slash, cell = row.split()
    assert (job_id, stage, flavor, slash) == (record["id"], "COMPLETED", "cpu-upgrade", "/")
    assert notebook == "ps-columns.ipynb"
    assert re.fullmatch(r"\d+[smhd] ago|just now", " ".join(created)), created
    assert re.fullmatch(r"[0-9a-f]{8,}", cell), cell


def test_check_error_names_every_failing_check(sandbox, tmp_path):
    before = job_count(sandbox)
    cell = "%%hfjob --yes --flavor a10g-largo --timeout 5m\nprint(never_defined_anywhere)"
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "HfJobCheckError"
    first = err.evalue.splitlines()[0]
    assert first == "3 check(s) failed (persistence, flavor, variables); nothing was submitted."
    for check, why in [("persistence", "--allow-no-push"), ("flavor", "a10g-large"), ("variables", "never_defined")]:
        assert re.search(rf"{check}.*{why}", err.evalue, re.S), (check, err.evalue)
    assert job_count(sandbox) == before


# -- flags that must reach the submitted job -------------------------------------------------------------------------


def test_no_token_namespace_name_and_labels_reach_the_job(sandbox, tmp_path):
    cell = (f"%%hfjob {QUIET} --no-token --namespace alice-lab --name nightly-eval --label team=nlp --label stage=dev\n"
            "import os\nprint('token', 'HF_TOKEN' in os.environ)")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    assert "token False" in text_of(nb.cells[1])
    job = api_of(sandbox).inspect_job(job_id=final_record(nb.cells[1])["id"], namespace="alice-lab")
    assert job.owner.name == "alice-lab" and job.owner.type == "org" and job.initiator.name == sandbox.user
    assert "HF_TOKEN" not in (job.secrets or {})
    assert {k: job.labels[k] for k in ("name", "team", "stage")} == {"name": "nightly-eval", "team": "nlp",
                                                                      "stage": "dev"}


def test_hf_token_travels_as_a_secret_by_default(sandbox, tmp_path):
    digest = hashlib.sha256(sandbox.token.encode()).hexdigest()  # the token itself in a cell fails a check
    cell = (f"%%hfjob {QUIET}\nimport hashlib, os\n"
            "print('token', hashlib.sha256(os.environ['HF_TOKEN'].encode()).hexdigest())")
    nb, err = execute([LOAD, cell], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    job = api_of(sandbox).inspect_job(job_id=final_record(nb.cells[1])["id"], namespace=sandbox.user)
    assert "HF_TOKEN" in job.secrets and "HF_TOKEN" not in (job.environment or {})
    assert f"token {digest}" in text_of(nb.cells[1])


def test_without_timeout_the_server_default_stops_the_job(fresh_sandbox, tmp_path):
    """No --timeout: the magic sends none and the server's default applies (30 minutes on the Hub; 2 s here)."""
    fresh_sandbox.jobs.default_timeout = 2
    fresh_sandbox.jobs.grace_seconds = 0.5
    cell = "%%hfjob --allow-no-push --yes\nimport time\nprint('waiting', flush=True)\ntime.sleep(120)"
    nb, err = execute([LOAD, cell], sandbox_env(fresh_sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "HfJobFailed" and "timed out after 2 s" in err.evalue
    job_id = final_record(nb.cells[1])["id"]
    assert timeout_of(fresh_sandbox, job_id, fresh_sandbox.user) == 2

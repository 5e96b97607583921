"""`%%hfjob` flags -> JobSpec: parsing, defaults, and the messages a user sees on a mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub._jobs_api import _create_job_spec
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import magic_arguments

from hfjobs_magic.cell.spec import (
    DEFAULT_IMAGE,
    Defaults,
    JobSpec,
    build_spec,
    job_arguments,
    known_flags,
    parse_args,
    parse_line,
    parse_timeout,
    read_pyproject_defaults,
)

FULL_LINE = (
    "--flavor a10g-large --timeout 1.5h --push alice/results --repo-type dataset "
    "--secrets WANDB_API_KEY --secrets OPENAI_API_KEY=sk-literal --env LR=3e-4 --env 'MSG=hello world' "
    "--with 'transformers>=4.40' --with peft --python 3.11 --image ghcr.io/me/img:1 --namespace my-org "
    "--name sft-run --label team=nlp --label stage=dev --vars lr,epochs --outputs out --sync-every 10m "
    "--card --allow-no-push --no-pin --yes --detach"
)


def spec_of(line: str, defaults: Defaults | None = None) -> JobSpec:
    return build_spec(parse_line(line), defaults)


def usage_error(line: str, defaults: Defaults | None = None) -> str:
    with pytest.raises(UsageError) as info:
        spec_of(line, defaults)
    return str(info.value)


def test_every_flag_parses_into_the_spec():
    spec = spec_of(FULL_LINE)
    assert spec.flavor == "a10g-large"
    assert (spec.timeout, spec.timeout_seconds) == ("1.5h", 5400)
    assert (spec.push, spec.repo_type, spec.push_kind) == ("alice/results", "dataset", "hub")
    assert spec.secrets == {"HF_TOKEN": None, "WANDB_API_KEY": None, "OPENAI_API_KEY": "sk-literal"}
    assert spec.env == {"LR": "3e-4", "MSG": "hello world"}
    assert spec.with_deps == ("transformers>=4.40", "peft")
    assert (spec.python, spec.image, spec.namespace, spec.name) == ("3.11", "ghcr.io/me/img:1", "my-org", "sft-run")
    assert spec.labels == {"team": "nlp", "stage": "dev"}
    assert spec.vars == ("lr", "epochs")
    assert (spec.outputs, spec.sync_every_seconds) == ("out", 600)
    assert spec.card and spec.allow_no_push and spec.yes and spec.detach
    assert not spec.pin and not spec.dry_run


def test_no_flags_gives_the_documented_defaults():
    spec = spec_of("")
    assert spec == JobSpec()
    assert spec.flavor == "cpu-basic" and spec.image == DEFAULT_IMAGE
    assert spec.secrets == {"HF_TOKEN": None} and spec.passes_token
    assert spec.timeout is None and spec.timeout_seconds is None and spec.push is None and spec.repo_type is None
    assert spec.pin and not spec.yes


def test_no_token_drops_hf_token_and_dry_run_parses():
    spec = spec_of("--no-token --secrets W --dry-run")
    assert spec.secrets == {"W": None} and not spec.passes_token
    assert spec.dry_run


def test_defaults_apply_when_a_flag_is_absent_and_flags_win():
    defaults = Defaults(
        flavor="t4-small", timeout=3600, namespace="org", image="img:2", python="3.12", push="s3://b/p",
        secrets=("W",), env={"A": "1", "B": "2"}, labels={"team": "x"}, with_deps=("numpy<2",),
        sync_every="5m", card=False, pin=False, pass_token=False, auto_confirm=True,
    )
    spec = spec_of("", defaults)
    assert (spec.flavor, spec.timeout, spec.timeout_seconds, spec.namespace) == ("t4-small", "3600", 3600, "org")
    assert (spec.image, spec.python, spec.push, spec.push_kind) == ("img:2", "3.12", "s3://b/p", "s3")
    assert spec.repo_type is None  # not a Hub target
    assert spec.secrets == {"W": None} and spec.env == {"A": "1", "B": "2"} and spec.labels == {"team": "x"}
    assert spec.with_deps == ("numpy<2",) and not spec.pin and spec.yes

    spec = spec_of("--flavor a100-large --timeout 2h --push u/r --env B=3 --with peft --label team=y", defaults)
    assert (spec.flavor, spec.timeout_seconds, spec.push, spec.repo_type) == ("a100-large", 7200, "u/r", "model")
    assert spec.env == {"A": "1", "B": "3"} and spec.labels == {"team": "y"}
    assert spec.with_deps == ("numpy<2", "peft")


@pytest.mark.parametrize(
    ("line", "suggestion"),
    [
        ("--flavour a10g-large", "did you mean --flavor?"),
        ("--timout 2h", "did you mean --timeout?"),
        ("--flavor t4-small --secerts W", "did you mean --secrets?"),
        ("--repo_type dataset --push u/r", "did you mean --repo-type?"),
        ("--dryrun", "did you mean --dry-run?"),
        ("--flavour=a10g-large", "did you mean --flavor?"),
    ],
)
def test_unknown_flags_get_a_did_you_mean(line, suggestion):
    message = usage_error(line)
    typed = next(t for t in line.split() if t.startswith("--") and t.split("=")[0] not in known_flags())
    assert f"unknown flag {typed.split('=')[0]}: {suggestion}" == message


def test_unambiguous_abbreviations_work_as_in_every_magic():
    assert spec_of("--secret W --flav t4-small").secrets == {"HF_TOKEN": None, "W": None}
    assert "ambiguous option: --n" in usage_error("--n x")


def test_argparse_errors_are_rephrased():
    assert "every value needs its flag" in usage_error("a10g-large")
    assert "--flavor" in usage_error("--flavor") and "%%hfjob?" in usage_error("--flavor")
    assert "close the quote" in usage_error("--name 'unterminated")
    message = usage_error("--push u/r --repo-type modle")
    assert "invalid choice" in message and "did you mean model?" in message


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("--timeout soon", "expected seconds or a number with s/m/h/d, e.g. 90m or 1.5h"),
        ("--timeout 1h30m", "e.g. 90m or 1.5h"),
        ("--timeout 0", "must be at least one second"),
        ("--timeout=-5m", "must be at least one second"),
        ("--env LR", "expected KEY=VALUE"),
        ("--env =1", "expected KEY=VALUE"),
        ("--env 'MY VAR=1'", "not a valid variable name"),
        ("--label team", "--label 'team': expected KEY=VALUE"),
        ("--vars lr,2x", "'2x' is not a Python variable name"),
        ("--vars lr,class", "'class' is not a Python variable name"),
        ("--secrets 'BAD NAME'", "expected NAME or NAME=VALUE"),
        ("--outputs out", "--outputs needs a place to push them: add --push"),
        ("--push u/r --sync-every 5m", "--sync-every pushes the --outputs folder: add --outputs"),
        ("--push u/r --outputs out --sync-every never", "--sync-every 'never'"),
        ("--detach --dry-run", "--detach and --dry-run conflict"),
        ("--no-token --secrets HF_TOKEN=hf_x", "conflicts with --no-token"),
        ("--no-token --secrets HF_TOKEN", "conflicts with --no-token"),
        ("--push http://example.com/x", "expected a Hub repo id"),
        ("--card", "--card writes a card to the push target: add --push"),
        ("--python 3", "expected a version like 3.11"),
        ("--name run --label name=other", "--name and --label name=... both name the job"),
    ],
)
def test_bad_values_and_conflicts_say_what_to_do(line, fragment):
    assert fragment in usage_error(line)


def test_bad_default_is_reported_like_a_bad_flag():
    assert "e.g. 90m or 1.5h" in usage_error("", Defaults(timeout="2 hours"))


def test_unknown_flavor_is_left_to_the_checklist():
    assert spec_of("--flavor a10g-largee").flavor == "a10g-largee"


def test_repo_type_alone_is_fine():
    assert spec_of("--repo-type dataset").repo_type == "dataset"


def test_s3_and_gs_targets():
    assert spec_of("--push s3://bucket/prefix --outputs out").push_kind == "s3"
    assert spec_of("--push gs://bucket/prefix").push_kind == "gs"


def test_secret_values_stay_out_of_the_repr():
    spec = spec_of("--secrets OPENAI_API_KEY=sk-very-secret")
    assert "sk-very-secret" not in repr(spec)
    assert spec.secret_names == ("HF_TOKEN", "OPENAI_API_KEY")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(300, 300), ("300", 300), ("90s", 90), ("5m", 300), ("1.5h", 5400), ("2d", 172800), (".5h", 1800),
     ("2.5m", 150), (7200.9, 7200)],
)
def test_parse_timeout_matches_huggingface_hub(value, seconds):
    assert parse_timeout(value) == seconds
    hub = _create_job_spec(image="x", command=[], env=None, secrets=None, flavor=None, timeout=value)
    assert hub["timeoutSeconds"] == seconds


@pytest.mark.parametrize("value", ["", "h", "abc", "1.5", "5x", "1h30m", "5 m", "5M", True, "1e3s"])
def test_parse_timeout_rejects_what_the_hub_would_not_understand(value):
    with pytest.raises(UsageError, match="expected seconds or a number with s/m/h/d"):
        parse_timeout(value)


@pytest.mark.parametrize("value", [0, "0", "0s", "-5m", -1, "0.0001s"])
def test_parse_timeout_rejects_non_positive(value):
    with pytest.raises(UsageError, match="at least one second"):
        parse_timeout(value)


def test_parse_timeout_names_the_flag():
    with pytest.raises(UsageError, match="--sync-every 'x'"):
        parse_timeout("x", flag="--sync-every")


def test_job_arguments_compose_with_a_cell_magic():
    @magics_class
    class Demo(Magics):
        @magic_arguments()
        @job_arguments
        @cell_magic
        def hfjob(self, line, cell):
            """Run this cell on Hugging Face Jobs.

            Example::

                %%hfjob --flavor a10g-large --timeout 2h
            """
            return parse_args(self.hfjob, line)

    demo = Demo(shell=None)
    assert demo.hfjob("--flavor t4-small --yes", "").flavor == "t4-small"
    help_text = Demo.hfjob.__doc__
    assert "%%hfjob --flavor a10g-large" in help_text
    assert all(flag in help_text for flag in known_flags())
    with pytest.raises(UsageError, match="did you mean --flavor"):
        demo.hfjob("--flavour x", "")


def test_known_flags_cover_the_contract():
    contract = ["--flavor", "--timeout", "--push", "--repo-type", "--secrets", "--env", "--with", "--python",
                "--image", "--namespace", "--name", "--label", "--vars", "--outputs", "--yes", "--detach", "--dry-run"]
    assert set(contract) <= set(known_flags())


def write_pyproject(folder: Path, text: str) -> Path:
    (folder / "pyproject.toml").write_text(text, encoding="utf-8")
    return folder


def test_pyproject_defaults_are_read(tmp_path):
    write_pyproject(tmp_path, """
[project]
name = "x"

[tool.hfjobs_magic]
flavor = "a10g-small"
timeout = "3h"
repo-type = "dataset"
secrets = ["WANDB_API_KEY"]
with = ["peft"]
auto_confirm = true

[tool.hfjobs_magic.env]
HF_HUB_ENABLE_HF_TRANSFER = "1"
""")
    values = read_pyproject_defaults(tmp_path)
    assert values == {
        "flavor": "a10g-small", "timeout": "3h", "repo_type": "dataset", "secrets": ("WANDB_API_KEY",),
        "with_deps": ("peft",), "auto_confirm": True, "env": {"HF_HUB_ENABLE_HF_TRANSFER": "1"},
    }
    spec = spec_of("", Defaults(**values))
    assert (spec.flavor, spec.timeout_seconds, spec.yes) == ("a10g-small", 10800, True)
    assert "WANDB_API_KEY" in spec.secrets and spec.with_deps == ("peft",)


def test_pyproject_without_file_or_table_gives_nothing(tmp_path):
    assert read_pyproject_defaults(tmp_path) == {}
    write_pyproject(tmp_path, "[project]\nname = 'x'\n")
    assert read_pyproject_defaults(tmp_path) == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[tool.hfjobs_magic]\nflavour = 'x'\n", "did you mean flavor?"),
        ("[tool.hfjobs_magic]\nflavor = 3\n", "flavor has the wrong type"),
        ("[tool.hfjobs_magic]\nsecrets = 'W'\n", "secrets has the wrong type"),
        ("[tool.hfjobs_magic]\npin = 'no'\n", "pin has the wrong type"),
        ("[tool.hfjobs_magic\n", "not valid TOML"),
    ],
)
def test_pyproject_mistakes_are_usage_errors(tmp_path, text, fragment):
    write_pyproject(tmp_path, text)
    with pytest.raises(UsageError, match=fragment):
        read_pyproject_defaults(tmp_path)

"""Bad input never breaks us or leaks (issue 13): random `%%hfjob` lines and cell bodies.

Through the magic in a real IPython shell (`--dry-run`, against a sandbox), through `hfjob check
--json` and through `hfjob export` (in-process, via `cli.main`): every input ends in a check result,
a `UsageError` or one of our `HfJobError`s, never a traceback of ours, and neither the token nor a
secret's value is ever echoed. Derandomized, with few examples, so CI runs it in well under two minutes.
"""

from __future__ import annotations

import io
import json
import shlex
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import nbformat
import pytest
from huggingface_hub import HfApi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from hfjobs_magic import cli, commands
from hfjobs_magic.cell.spec import known_flags, parse_timeout
from hfjobs_magic.checkresult import CHECK_IDS
from hfjobs_magic.errors import HfJobError
from hfjobs_magic.notebook import JobCell
from hfjobs_magic.sandbox import Sandbox

CANARY = "hf_FuzzCanaryTokenNeverEchoed0123456789abcdef"  # the sandbox's token and HF_TOKEN
SECRET_NAME, SECRET = "FUZZ_SECRET", "fuzz-secret-value-7d1e9c4b"  # a secret in the environment
FUZZ = settings(max_examples=75, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])

NASTY = ["\x00", "\u202e", "\u2066", "\u200f", "\u2028", "'", '"', "\\", ";", "|", "&&", "$(id)", "`id`", ">",
         "<", "*", "#", "=", ",", "\t", "é", "中文", "😀", "", CANARY, f"K={CANARY}", "${HF_TOKEN}", "$HF_TOKEN",
         SECRET_NAME, f"{SECRET_NAME}={CANARY}", "1h", "90m", "-5", "0", "1e9", "nan", "s3://b/p", "gs://", "ftp://x",
         "alice/repo", "a/b/c", "cpu-basic", "a10g-large", "3.12", "x" * 3000, "--", "-x", "--timeout=5m"]
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=24)
VALUES = st.one_of(TEXT, st.sampled_from(NASTY))
TOKENS = st.one_of(st.sampled_from([*known_flags(), "--no-such-flag", "--flavour"]), VALUES)
RANDOM_LINES = st.lists(st.tuples(TOKENS, st.booleans()), max_size=8).map(
    lambda parts: " ".join(shlex.quote(t) if quoted else t for t, quoted in parts))
# Lines that parse, so that the bodies reach every check too.
VALID_LINES = st.lists(st.sampled_from([
    "--allow-no-push", "--push alice/fuzz-target --repo-type dataset", "--outputs out --push alice/fuzz-out",
    f"--secrets {SECRET_NAME}", "--no-token", "--timeout 1h", "--flavor a10g-large", "--flavor no-such-flavor",
    "--push s3://bucket/prefix", "--with numpy", "--no-pin", "--python 3.12", "--env A=1", "--label k=v",
    "--namespace someone-else", "--card --push alice/fuzz-card", f"--env K={CANARY}",
]), max_size=4).map(" ".join)
LINES = st.one_of(RANDOM_LINES, VALID_LINES)

SNIPPETS = [
    "print(1)", "return 1", "yield 2", "await foo()", "async for x in y:\n    pass", "!ls -la; rm -rf /nonexistent",
    "%pip install numpy", "%%bash", "def f(:", "if True:\n  pass\n    bad_indent", "x = '\u202e\u2066'",
    f"import os\nprint(os.environ['{SECRET_NAME}'])", f"token = '{CANARY}'", "\x00", "", "import torch",
    "from huggingface_hub import HfApi\nHfApi().upload_folder(repo_id='alice/x', folder_path='.')",
    "ds.push_to_hub('alice/fuzz')", "global x", "nonlocal y", "from __future__ import annotations",
    "# /// script\n# dependencies = [\n# ///", "import os; os.system('echo $HF_TOKEN')", "lambda: (yield)",
]
BODIES = st.one_of(
    st.lists(st.one_of(st.sampled_from(SNIPPETS), st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)),
             max_size=6).map("\n".join),
    st.sampled_from(["x = 1\n" * 5_000, "#" * 200_000, "(" * 300]),  # huge cells, deep nesting
)


@pytest.fixture(scope="module")
def canary_sandbox():
    with Sandbox(token=CANARY) as sb:
        yield sb


@pytest.fixture
def env(canary_sandbox, tmp_path, monkeypatch):
    nowhere = "http://127.0.0.1:9"  # S3/GCS push targets are probed here: refused at once, no network
    for key, value in {"HF_ENDPOINT": canary_sandbox.endpoint, "HF_TOKEN": CANARY, SECRET_NAME: SECRET,
                       "HFJOB_HEADLESS": "1", "HFJOB_HISTORY": str(tmp_path / "history.jsonl"),
                       "AWS_ENDPOINT_URL": nowhere, "AWS_MAX_ATTEMPTS": "1", "STORAGE_EMULATOR_HOST": nowhere,
                       "AWS_ACCESS_KEY_ID": "fuzz", "AWS_SECRET_ACCESS_KEY": SECRET}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no pyproject.toml of ours is read as defaults
    return canary_sandbox


CRASHED = "this check could not run"  # what checklist._safely says when a check of ours raised: a bug


def leaked(text: str) -> bool:
    return CANARY in text or CANARY[3:20] in text or SECRET in text


def jobs_of(sb: Sandbox) -> int:
    return len(list(HfApi(endpoint=sb.endpoint, token=CANARY).list_jobs(namespace=sb.user)))


def notebook(folder: Path, line: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"%%hfjob {line}\n{body}")]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fuzz.ipynb"
    nbformat.write(nb, str(path))
    return path


def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        code = cli.main(list(args))
    return code, out.getvalue()


# -- the magic, in a real shell -----------------------------------------------------------------------------

@pytest.fixture
def shell(env):
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hfjobs_magic")
    return ip


@FUZZ
@given(line=LINES, body=BODIES)
def test_the_magic_ends_in_checks_or_a_usage_error_and_echoes_no_secret(shell, env, line, body):
    before = jobs_of(env)
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        result = shell.run_cell(f"%%hfjob --dry-run {line}\n{body}", store_history=False)
    err = result.error_in_exec
    assert err is None or isinstance(err, (UsageError, HfJobError)), f"{type(err).__name__}: {err}"
    # IPython itself may refuse the cell before our code runs; then nothing of ours ran to fail
    assert result.error_before_exec is None or "hfjobs_magic" not in out.getvalue()
    shown = out.getvalue() + (str(err) if err else "")
    assert not leaked(shown), shown[-2000:]
    if err is None and result.error_before_exec is None:
        assert "Checks:" in shown  # a dry run always ends with the checklist
    assert CRASHED not in shown, shown[-2000:]
    assert jobs_of(env) == before  # --dry-run submits nothing


@pytest.mark.parametrize(("line", "body", "refused"), [
    ("--name \ud800", "print(1)", True),  # half a surrogate pair: no UTF-8 request can carry it
    (f"--secrets {SECRET_NAME}=\udfff{SECRET}", "print(1)", True),
    ("--allow-no-push --push alice/\ud800x", "print(1)", True),
    ("--allow-no-push", "print('\ud800')", True),
    ("--allow-no-push", "x = " + "+".join(["1"] * 4000), True),  # deeper than Python compiles
    ("--allow-no-push", "a = 1\nx = " + "+".join(["a"] * 1000), False),  # deep, and fine
])
def test_what_no_request_can_carry_or_python_compile_is_a_usage_error(shell, env, line, body, refused):
    """Inputs the strategies above leave out (they make notebook files, which cannot hold such text)."""
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        result = shell.run_cell(f"%%hfjob --dry-run {line}\n{body}", store_history=False)
    err = result.error_in_exec
    assert isinstance(err, UsageError) if refused else err is None, f"{type(err).__name__}: {err}"
    shown = out.getvalue() + (str(err) if err else "")
    assert not leaked(shown) and CRASHED not in shown, shown[-2000:]


# -- hfjob check --json and hfjob export, in-process --------------------------------------------------------

@FUZZ
@given(line=LINES, body=BODIES)
def test_check_json_reports_every_check_and_echoes_no_secret(env, tmp_path_factory, line, body):
    path = notebook(tmp_path_factory.mktemp("check"), line, body)
    code, shown = run_cli("check", str(path), "--json")
    assert code in (0, 1), shown[-2000:]
    assert not leaked(shown), shown[-2000:]
    reports = json.loads(shown)
    assert len(reports) == 1
    checks = reports[0]["checks"]
    assert [c["id"] for c in checks] == list(CHECK_IDS)
    assert {c["status"] for c in checks} <= {"ok", "warn", "fail", "skip"}
    assert not [c for c in checks if CRASHED in c["message"]], checks
    assert (code == 1) == any(c["status"] == "fail" for c in checks)


@FUZZ
@given(line=LINES, body=BODIES)
def test_export_writes_a_script_or_says_why_and_echoes_no_secret(env, tmp_path_factory, line, body):
    folder = tmp_path_factory.mktemp("export")
    path = notebook(folder, line, body)
    code, shown = run_cli("export", str(path), "-o", str(folder / "out"))
    assert code in (0, 1, 2), shown[-2000:]  # 2: the %%hfjob line is invalid, said in one line
    written = [p.read_text(encoding="utf-8") for p in (folder / "out").glob("*.py")]
    assert (code == 0) == bool(written)
    for text in [shown, *written]:
        assert not leaked(text), text[-2000:]
    if code == 2:
        assert shown.startswith("hfjob export: ") and "Traceback" not in shown


# -- a problem found while parsing the flags is reported under the check it concerns ------------------------

def owner_of(line: str, tmp_path: Path) -> dict[str, str]:
    """Statuses by check id for a cell with this line (the line fails before any Hub look-up)."""
    results = commands.check_cell(tmp_path / "n.ipynb", JobCell(0, line, "print(1)"), client=None)
    return {r.id: r.status for r in results}


def invalid_duration(text: str) -> bool:
    try:
        parse_timeout(text)
    except UsageError:
        return True
    return False


@FUZZ
@given(value=VALUES.filter(invalid_duration))
def test_a_bad_timeout_fails_the_timeout_check(tmp_path, value):
    statuses = owner_of(f"--timeout {shlex.quote(value)}", tmp_path)
    assert statuses["timeout"] == "fail" and list(statuses.values()).count("fail") == 1, statuses


@FUZZ
@given(scheme=st.from_regex(r"\A[a-z][a-z0-9+]{0,8}\Z").filter(lambda s: s not in ("s3", "gs")), rest=TEXT)
def test_a_bad_push_target_fails_the_push_target_check(tmp_path, scheme, rest):
    statuses = owner_of(f"--push {shlex.quote(f'{scheme}://{rest}')}", tmp_path)
    assert statuses["push_target"] == "fail" and list(statuses.values()).count("fail") == 1, statuses


@pytest.mark.parametrize(("line", "owner"), [
    ("--flavor", "flavor"), ("--timeout", "timeout"), ("--timeout 0", "timeout"), ("--push", "push_target"),
    ("--repo-type nope --push a/b", "push_target"), ("--card", "push_target"), ("--outputs out", "persistence"),
    ("--sync-every 5m", "persistence"), ("--secrets 'NOT A NAME'", "secrets"), ("--vars 1x", "variables"),
    ("--python 2", "dependencies"), ("--no-such-flag", "script"), ("--name 'unclosed", "script"),
    ("--push hf://buckets/alice", "push_target"), ("--pull data", "persistence"), ("--return 1x", "persistence"),
    ("--return x --no-token", "persistence"), ("--cancel-if-idle 0", "timeout"), ("--volume /tmp:/data", "script"),
])
def test_each_flag_error_fails_the_check_it_concerns(tmp_path, line, owner):
    statuses = owner_of(line, tmp_path)
    assert statuses[owner] == "fail", statuses
    assert [k for k, v in statuses.items() if v == "fail"] == [owner]
    assert set(statuses) == set(CHECK_IDS) and set(statuses.values()) == {"fail", "skip"}

"""The notebook round trip, end to end: notebooks executed by nbclient in a real kernel against a real
sandbox. A job cell uses what earlier cells defined (carried), tracebacks point at the cells, and
`hfjob check` / `hfjob export` carry the same from the notebook file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from huggingface_hub import HfApi

from hfjobs_magic.cell.spec import build_spec, parse_line
from hfjobs_magic.checks import context_for, run_checks
from hfjobs_magic.remote import storage
from hfjobs_magic.remote.hub import HubClient
from tests.emulators import gcs_server, s3_server
from tests.nbrun import environ, execute, final_record, sandbox_env, text_of

LOAD = "%load_ext hfjobs_magic"
QUIET = "--allow-no-push --timeout 5m --yes"
HFJOB = str(Path(sys.executable).parent / "hfjob")

SETUP = [
    "import numpy as np\nimport pandas as pd\nfrom collections import Counter as C\nSCALE = 3",
    "def helper(x):\n    return inner(x) * SCALE\n\ndef inner(x):\n    return x + 1",
    "class Model:\n    def predict(self, x):\n        return later(x)",  # later is defined in a cell below
    "def later(x):\n    return helper(x) * 2",
    "W = np.arange(4)\ndf = pd.DataFrame({'a': [1, 2]})",
    "def helper(x):\n    return inner(x) * SCALE * 10",  # redefined: the later definition wins
]
USE = "print('R', Model().predict(1), W.sum(), df['a'].sum(), C('aab')['a'], type(np.pi).__name__)"


def test_a_job_cell_uses_what_earlier_cells_defined(sandbox, tmp_path):
    nb, err = execute([LOAD, *SETUP, f"%%hfjob {QUIET}\n{USE}"], sandbox_env(sandbox, tmp_path),
                      tmp_path / "n.ipynb", timeout=600)
    assert err is None, err
    out = text_of(nb.cells[-1])
    assert "R 120 6 3 2 float" in out  # later(1) = helper(1) * 2 = (1 + 1) * 3 * 10 * 2
    variables = next(line for line in out.splitlines() if "variables:" in line)
    # cells are named by execution count; the redefinition (cell 7) is the one carried
    assert "Model (cell 4)" in variables and "later (cell 5)" in variables and "helper (cell 7)" in variables
    assert "C, np" in variables and "W (" in variables and "df (" in variables and "SCALE" in variables
    assert final_record(nb.cells[-1])["stage"] == "COMPLETED"


def test_dry_run_shows_each_carried_block_with_its_cell(sandbox, tmp_path):
    nb, err = execute([LOAD, *SETUP[:2], "BIG = np.arange(1000)",
                       "%%hfjob --dry-run --allow-no-push\nprint(helper(1), BIG.sum())"],
                      sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    out = text_of(nb.cells[-1])
    assert "# carried from cell 3: inner" in out and "# carried from cell 3: helper" in out
    assert "SCALE = 3  # carried" in out and "def helper(x):" in out
    assert "characters of base85\")  # carried (" in out  # a pickle's bytes are not shown


def test_what_cannot_travel_is_refused_before_submission(sandbox, tmp_path):
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    before = len(list(api.list_jobs(namespace=sandbox.user)))
    cells = [LOAD, "%config HFJobMagics.carry_max_bytes = 10000",
             "import threading, numpy as np\nlock = threading.Lock()\nbig = np.zeros(100_000)\n"
             "square = lambda x: x * x",
             f"%%hfjob {QUIET}\nwith lock:\n    print(square(big.sum()))"]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "HfJobCheckError", err
    assert "variables" in err.evalue
    for fragment in ("lock (_thread.lock)", "big is 781.2 KiB", "carry_max_bytes", "square is a lambda"):
        assert fragment in err.evalue
    assert len(list(api.list_jobs(namespace=sandbox.user))) == before


def test_a_failing_job_traceback_points_at_the_cells(sandbox, tmp_path):
    cells = [LOAD, "def deep(n):\n    total = n + 1\n    raise ValueError(f'deep down {total}')",
             f"%%hfjob {QUIET}\nprint('start')\ndeep(1)"]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is not None and err.ename == "HfJobFailed"
    assert 'File "%%hfjob cell", line 3, in <module>' in err.evalue and "    deep(1)" in err.evalue
    assert 'File "%%hfjob cell 2", line 3, in deep' in err.evalue
    assert "raise ValueError(f'deep down {total}')" in err.evalue and "ValueError: deep down 2" in err.evalue
    record = final_record(nb.cells[-1])
    assert "ValueError: deep down 2" in (record["message"] or "")
    assert any('File "%%hfjob cell", line 3' in line for line in record["log_tail"])


# -- without a kernel --------------------------------------------------------------------------------

STATIC = [
    "import math as m\nfrom collections import Counter as C\nSCALE = 3",
    "def helper(x):\n    return inner(x) * SCALE\n\ndef inner(x):\n    return m.floor(x) + 1",
    "class Model:\n    def predict(self, x):\n        return later(x)",
    "def later(x):\n    return helper(x) * 2",
    "def helper(x):\n    return inner(x) * SCALE * 10",
]
STATIC_JOB = "%%hfjob --no-token --allow-no-push\nprint('R', Model().predict(1.5), C('aab')['a'])"


def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))
    return path


def test_check_and_export_carry_from_the_notebook_file(sandbox, tmp_path):
    path = write_notebook(tmp_path / "static.ipynb", [*STATIC, STATIC_JOB, "rows = load()\n",
                                                       "%%hfjob --no-token --allow-no-push\nprint(len(rows))"])
    env = {**os.environ, "HF_ENDPOINT": sandbox.endpoint, "HF_TOKEN": sandbox.token,
           "HF_HOME": str(tmp_path / "hf-home")}
    done = subprocess.run([HFJOB, "check", str(path), "--json"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    report = json.loads(done.stdout)
    first, second = ({c["id"]: c for c in r["checks"]}["variables"] for r in report)
    assert first["status"] == "ok", first
    assert "Model (cell 2)" in first["message"] and "helper (cell 4)" in first["message"]
    assert "C, m" in first["message"] and "SCALE" in first["message"]
    assert second["status"] == "skip" and "rows" in second["message"]  # only a kernel knows it: never a failure
    exported = subprocess.run([HFJOB, "export", str(path), "-o", str(tmp_path / "out")], env=env,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    script = tmp_path / "out" / "static_cell5.py"
    uv = str(Path(sys.executable).parent / "uv")
    ran = subprocess.run([uv, "run", "--no-project", "--quiet", str(script)], capture_output=True, text=True,
                         env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"}, timeout=240, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "R 120 2"


@pytest.mark.parametrize("kind", ["repo", "bucket"])
def test_pull_downloads_what_the_job_pushed_next_to_the_notebook(sandbox, tmp_path, unique_name, kind):
    if kind == "repo":
        target, push = f"{sandbox.user}/{unique_name}", f"{sandbox.user}/{unique_name} --repo-type dataset"
    else:
        target = push = f"hf://buckets/{sandbox.user}/{unique_name[:40]}/run"
    cells = [LOAD, f"%%hfjob --timeout 5m --yes --outputs out --push {push} --pull got\n"
                   "import os\nos.makedirs('out/sub', exist_ok=True)\nopen('out/sub/result.txt', 'w').write('42')",
             "print('read back', open('got/sub/result.txt').read())"]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb")
    assert err is None, err
    assert f"[hfjob] pulled 1 file(s) from {target} into got" in text_of(nb.cells[1])
    assert "read back 42" in text_of(nb.cells[2])
    assert final_record(nb.cells[1])["pulled"] == f"1 file(s) from {target} into got"


# -- --return --------------------------------------------------------------------------------------

RETURNING = (f"%%hfjob {QUIET} --return score,counts,table\n"
             "import collections\nimport pandas as pd\n"
             "score = 0.25\ncounts = collections.Counter('aab')\ntable = pd.DataFrame({'x': [1, 2]})")


def test_returned_values_are_set_in_the_kernel(sandbox, tmp_path):
    check = ("from collections import Counter\nimport pandas as pd\n"
             "assert score == 0.25 and isinstance(score, float)\n"
             "assert counts == Counter('aab') and type(counts) is Counter\n"
             "assert isinstance(table, pd.DataFrame) and table['x'].tolist() == [1, 2]\nprint('returned ok')")
    nb, err = execute([LOAD, RETURNING, check], sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb", timeout=600)
    assert err is None, err
    record = final_record(nb.cells[1])
    assert f"score, counts, table <- job {record['id']}" in text_of(nb.cells[1])
    assert "returned ok" in text_of(nb.cells[2])
    assert [(r["name"], r["type"]) for r in record["returns"]] == [
        ("score", "float"), ("counts", "Counter"), ("table", "DataFrame")]
    assert all(r["bytes"] > 0 for r in record["returns"])
    saved = (tmp_path / "n.ipynb").read_text() + (tmp_path / "history.jsonl").read_text()
    assert not re.search(r"\b[0-9a-f]{64}\b", saved)  # the signing key (64 hex digits) is never saved
    job = HfApi(endpoint=sandbox.endpoint, token=sandbox.token).inspect_job(job_id=record["id"],
                                                                             namespace=sandbox.user)
    assert "HFJOB_RETURN_KEY" not in (job.environment or {})  # a secret, not an environment variable


def test_a_failed_job_sets_nothing(sandbox, tmp_path):
    cell = f"%%hfjob {QUIET} --return score\nscore = 1.0\nraise RuntimeError('no result')"
    nb, err = execute([LOAD, cell, "print('score' in globals())"], sandbox_env(sandbox, tmp_path),
                      tmp_path / "n.ipynb", allow_errors=True)
    assert "HfJobFailed" in text_of(nb.cells[1]) and "<- job" not in text_of(nb.cells[1])
    assert text_of(nb.cells[2]).strip() == "False"
    assert final_record(nb.cells[1])["returns"] == []


def test_a_tampered_return_file_is_refused_and_sets_nothing(sandbox, tmp_path):
    """The job's own code swaps its uploaded value after signing (as someone with write access to the bucket
    could): the kernel refuses the file and sets nothing."""
    tamper = ("\nimport atexit, os\nfrom huggingface_hub import HfApi\n"
              "bucket = os.environ.get('HFJOB_RETURN_BUCKET', '')\nprefix = os.environ.get('HFJOB_RETURN_PREFIX', '')\n"
              "atexit.register(lambda: HfApi().batch_bucket_files(bucket, add=[(b'666', f'{prefix}/score.json')]))")
    cell = f"%%hfjob {QUIET} --return score\nscore = 0.5" + tamper
    nb, err = execute([LOAD, cell, "print('score' in globals())"], sandbox_env(sandbox, tmp_path),
                      tmp_path / "n.ipynb", allow_errors=True)
    out = text_of(nb.cells[1])
    assert "its returns were refused: score: the signature does not match" in out, out
    assert text_of(nb.cells[2]).strip() == "False"


def test_a_large_array_travels_through_the_bucket(sandbox, tmp_path):
    cells = [LOAD, "import numpy as np\nBIG = np.arange(400_000)",  # 3.1 MiB pickled: too big for the script
             f"%%hfjob {QUIET}\nprint('sum', int(BIG.sum()), BIG.dtype)"]
    nb, err = execute(cells, sandbox_env(sandbox, tmp_path), tmp_path / "n.ipynb", timeout=600)
    assert err is None, err
    out = text_of(nb.cells[-1])
    assert f"sum {sum(range(400_000))} int64" in out
    assert "BIG (3.1 MiB)" in out  # the variables check says what travelled
    api = HfApi(endpoint=sandbox.endpoint, token=sandbox.token)
    assert api.bucket_info(f"{sandbox.user}/jobs-artifacts").private
    job = api.inspect_job(job_id=final_record(nb.cells[-1])["id"], namespace=sandbox.user)
    assert len(job.environment["HFJOB_SCRIPT"]) < 100_000  # the script stays small


def test_attach_with_return_sets_them_again_even_after_a_kernel_restart(sandbox, tmp_path):
    last_job = "import json, os\nJOB = json.loads(open(os.environ['HFJOB_HISTORY']).read().splitlines()[-1])['id']"
    attach = "get_ipython().run_line_magic('hfjob_attach', JOB + ' --return score')\nprint('again', score)"
    cells = [LOAD, f"%%hfjob {QUIET} --return score\nscore = 0.75", "del score\n" + last_job, attach,
             "get_ipython().run_line_magic('hfjob_attach', JOB + ' --return other')"]
    env = sandbox_env(sandbox, tmp_path)
    nb, err = execute(cells, env, tmp_path / "n.ipynb", allow_errors=True)
    assert "again 0.75" in text_of(nb.cells[3]), text_of(nb.cells[3])
    assert "score <- job" in text_of(nb.cells[3])
    assert "its returns were refused: the job returned no other" in text_of(nb.cells[4])

    (key_file,) = (tmp_path / "return-keys").iterdir()  # the key, for a new kernel on this machine only
    assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.parent.stat().st_mode & 0o777 == 0o700
    restarted, err = execute([LOAD, last_job, attach], env, tmp_path / "restarted.ipynb")
    assert err is None, err
    assert "again 0.75" in text_of(restarted.cells[2])

    elsewhere = {**env, "HFJOB_HISTORY": str(tmp_path / "elsewhere" / "history.jsonl")}
    job = json.loads((tmp_path / "history.jsonl").read_text().splitlines()[-1])["id"]
    other, _ = execute([LOAD, f"JOB = {job!r}", attach], elsewhere, tmp_path / "other.ipynb", allow_errors=True)
    out = text_of(other.cells[2])
    assert "its returns are signed with a key kept where the job was submitted" in out and "Traceback" not in out
    saved = "".join(p.read_text() for p in tmp_path.glob("*.ipynb")) + (tmp_path / "history.jsonl").read_text()
    assert json.loads(key_file.read_text())["key"] not in saved


README_EXAMPLE = [
    "%load_ext hfjobs_magic",
    "import numpy as np\nfrom collections import Counter\nWEIGHTS = np.linspace(0, 1, 5)\n\n"
    "def score(words):\n    return sum(WEIGHTS[: len(words)]) / len(words)",
    "%%hfjob --yes --timeout 10m --return result,counts\nwords = \"the cat sat on the mat\".split()\n"
    "result = score(words)\ncounts = Counter(words)",
    "print(result, counts.most_common(1))",
]


def test_the_readme_example_runs_under_hfjob_run_sandbox(tmp_path):
    path = write_notebook(tmp_path / "example.ipynb", README_EXAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_TOKEN")}
    done = subprocess.run([HFJOB, "run", str(path), "--sandbox", "-o", str(tmp_path / "out.ipynb")], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    assert text_of(out.cells[3]).strip() == "0.4166666666666667 [('the', 2)]"  # (0 + .25 + .5 + .75 + 1) / 6


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_pull_from_s3_and_gcs_takes_the_prefix_and_nothing_outside_it(tmp_path, scheme):
    server = s3_server("pulls") if scheme == "s3" else gcs_server("pulls", tmp_path)
    with server as settings, environ(**settings):
        objects = {"run/a.txt": b"A", "run/sub/b.txt": b"B", "other/c.txt": b"C"}
        if scheme == "s3":
            for key, data in objects.items():
                storage.s3_client().put_object(Bucket="pulls", Key=key, Body=data)
        else:
            bucket = storage.gcs_client().bucket("pulls")
            for key, data in objects.items():
                bucket.blob(key).upload_from_string(data)
        written = storage.download_prefix(f"{scheme}://pulls/run", str(tmp_path / "got"))
    assert sorted(written) == ["a.txt", "sub/b.txt"]
    assert (tmp_path / "got" / "sub" / "b.txt").read_bytes() == b"B"
    assert not (tmp_path / "got" / "c.txt").exists() and not (tmp_path / "got" / "other").exists()


def test_return_counts_as_persistence(sandbox):
    client = HubClient(sandbox.endpoint, sandbox.token)
    results = run_checks(context_for("score = 1\n", build_spec(parse_line("--return score")), client=client))
    persistence = next(r for r in results if r.id == "persistence")
    assert persistence.status == "ok" and "--return score comes back to this notebook" in persistence.message


def test_interactive_returns_arrive_when_the_watcher_sees_the_job_complete(sandbox, tmp_path):
    """The interactive path (the cell has returned; a watcher thread feeds the widget): the values are set
    from that thread once the job COMPLETES, and the widget's last record says so."""
    from hfjobs_magic.cell.returns import epilogue
    from hfjobs_magic.cell.script import build_script
    from hfjobs_magic.jobs.history import History
    from hfjobs_magic.jobs.runner import JobRequest, Runner, RunSettings
    from hfjobs_magic.views.bundle import RecordDisplay
    from hfjobs_magic.views.widgets import JobWidget

    client = HubClient(sandbox.endpoint, sandbox.token)
    got: dict = {}
    runner = Runner(lambda: client, History(tmp_path / "history.jsonl"), RunSettings(headless=False),
                    deliver=got.update)
    spec = build_spec(parse_line("--return score --allow-no-push --timeout 5m"))
    script = build_script("score = 2.5\n", spec, variables={}, epilogue=epilogue(spec.returns))
    widget = JobWidget()
    runner._start_interactive(JobRequest(spec, script, [], None, "cell"), widget, RecordDisplay())
    deadline = time.monotonic() + 300
    while "Job ended" not in widget.outcome.value and time.monotonic() < deadline:
        time.sleep(0.2)
    assert got == {"score": 2.5}
    assert "Job ended COMPLETED" in widget.outcome.value and "score &lt;- job" in widget.outcome.value



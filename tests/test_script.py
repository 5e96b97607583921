"""A cell -> a PEP 723 uv script: IPython syntax, dependencies, [tool.hf-jobs], secrets, --vars, size,
and a round trip through a real `uv run`."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from huggingface_hub.cli._uv_script_header import parse_uv_script_header
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from hfjobs_magic.cell import deps
from hfjobs_magic.cell.deps import canonical_name, distribution_for, requirement_name
from hfjobs_magic.cell.script import MAX_SCRIPT_BYTES, PEP723_REGEX, JobScript, build_script
from hfjobs_magic.cell.spec import JobSpec, build_spec, load_toml, parse_line

KERNEL_MINOR = min(sys.version_info[:2], (3, 12))


def script_of(cell: str, line: str = "", **kwargs) -> JobScript:
    """Build the script the way the magic does, and check that it is valid Python."""
    script = build_script(textwrap.dedent(cell), build_spec(parse_line(line)), **kwargs)
    compile(script.text, "job.py", "exec")
    return script


def header_of(script: JobScript) -> dict:
    blocks = [m for m in PEP723_REGEX.finditer(script.text) if m.group("type") == "script"]
    assert len(blocks) == 1
    content = "".join(line[2:] for line in blocks[0].group("content").splitlines(keepends=True))
    return load_toml(content)


def names(requirements: list[str]) -> list[str | None]:
    return [requirement_name(r) for r in requirements]


def pinned(dist: str) -> str:
    """What a dependency becomes: pinned to this kernel's version when installed here, else a bare name."""
    try:
        return f"{canonical_name(dist)}=={metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        return canonical_name(dist)


TRANSFORMERS_TRAINER = """
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    model_id = "HuggingFaceTB/SmolLM2-135M"
    tokenizer = AutoTokenizer.from_pretrained(model_id)
    model = AutoModelForCausalLM.from_pretrained(model_id)
    ds = load_dataset("trl-lib/Capybara", split="train[:1%]")
    args = TrainingArguments(output_dir="out", num_train_epochs=1, push_to_hub=True, hub_model_id="alice/smol-sft")
    Trainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer).train()
    """
DATASETS_PUSH = """
    from datasets import Dataset
    ds = Dataset.from_dict({"text": ["a", "b"]})
    ds.push_to_hub("alice/sft-results")
    """
TORCH_LOOP = """
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader, TensorDataset
    import numpy as np
    from huggingface_hub import HfApi

    x = torch.tensor(np.random.rand(64, 4), dtype=torch.float32)
    model = nn.Linear(4, 1).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for epoch in range(3):
        for (batch,) in DataLoader(TensorDataset(x), batch_size=16):
            loss = model(batch.cuda()).pow(2).mean()
            loss.backward(); opt.step(); opt.zero_grad()
    torch.save(model.state_dict(), "model.pt")
    HfApi().upload_file(path_or_fileobj="model.pt", path_in_repo="model.pt", repo_id="alice/linear")
    """
SKLEARN = """
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    X, y = load_iris(return_X_y=True)
    joblib.dump(RandomForestClassifier().fit(X, y), "model.joblib")
    """
PANDAS = """
    import pandas as pd
    import json, os.path
    df = pd.DataFrame({"a": [1, 2]})
    df.to_parquet("hf://datasets/alice/table/data.parquet")
    """
HFAPI = """
    from huggingface_hub import HfApi, create_repo
    api = HfApi()
    create_repo("alice/notes", exist_ok=True)
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="notes.txt", repo_id="alice/notes")
    """
BOTO3 = """
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", config=Config(retries={"max_attempts": 3}))
    s3.upload_file("out.bin", "my-bucket", "runs/out.bin")
    """


# The kernel these cells are pinned against: fixed versions, whatever this machine has installed.
KERNEL_SITE = {
    "datasets": ("3.1.0", "datasets"), "transformers": ("4.46.3", "transformers"),
    "torch": ("2.5.1+cu124", "torch"), "numpy": ("2.1.3", "numpy"), "huggingface-hub": ("0.26.2", "huggingface_hub"),
    "scikit-learn": ("1.5.2", "sklearn"), "joblib": ("1.4.2", "joblib"), "pandas": ("2.2.3", "pandas"),
    "boto3": ("1.35.50", "boto3"), "botocore": ("1.35.50", "botocore"),
}


def write_site(folder: Path, dists: dict[str, tuple[str, list[str]]]) -> None:
    """dist-info folders only (name, version, RECORD): what pinning reads; no module is importable from them."""
    for name, (version, files) in dists.items():
        info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "RECORD").write_text("".join(f"{f},,\n" for f in [*files, f"{info.name}/METADATA"]))


@pytest.fixture
def kernel_site(tmp_path, monkeypatch):
    write_site(tmp_path, {name: (version, [f"{top}/__init__.py"]) for name, (version, top) in KERNEL_SITE.items()})
    monkeypatch.syspath_prepend(str(tmp_path))
    deps._packages_distributions.cache_clear()
    deps._files.cache_clear()
    yield
    deps._packages_distributions.cache_clear()
    deps._files.cache_clear()


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (TRANSFORMERS_TRAINER, ["datasets==3.1.0", "transformers==4.46.3"]),
        (DATASETS_PUSH, ["datasets==3.1.0"]),
        (TORCH_LOOP, ["huggingface-hub==0.26.2", "numpy==2.1.3", "torch==2.5.1"]),
        (SKLEARN, ["joblib==1.4.2", "scikit-learn==1.5.2"]),
        (PANDAS, ["pandas==2.2.3"]),
        (HFAPI, ["huggingface-hub==0.26.2"]),
        (BOTO3, ["boto3==1.35.50", "botocore==1.35.50"]),
    ],
    ids=["transformers-trainer", "datasets-push", "torch-loop", "sklearn", "pandas", "hfapi", "boto3"],
)
def test_real_cells_become_scripts_with_their_dependencies(kernel_site, cell, expected):
    script = script_of(cell, "--flavor a10g-large --timeout 2h")
    assert script.dependencies == expected
    assert header_of(script)["dependencies"] == expected
    assert script.ipython_only == [] and script.shell_commands == []
    assert "import os\nimport sys" in script.text  # the HF_TOKEN check
    assert textwrap.dedent(cell).strip() in script.text


def test_without_pinning_the_same_cells_name_bare_distributions(kernel_site):
    assert script_of(TORCH_LOOP, "--no-pin").dependencies == ["huggingface-hub", "numpy", "torch"]
    assert script_of(SKLEARN, "--no-pin").dependencies == ["joblib", "scikit-learn"]


def test_an_unknown_part_of_a_namespace_package_is_not_guessed():
    assert distribution_for("google.colab") is None
    assert script_of("from google.colab import drive\n").unresolved_imports == ["google"]


def test_unknown_modules_are_reported_not_guessed():
    script = script_of("import joblib_like_local_helper\nimport mylib.sub\nfrom . import sibling\n")
    assert script.unresolved_imports == ["joblib_like_local_helper", "mylib"]
    assert script.dependencies == []
    assert script.imports == ["joblib_like_local_helper", "mylib"]


def test_a_with_entry_covers_an_unresolved_import():
    script = script_of("import mylib\n", "--with mylib==1.0")
    assert script.unresolved_imports == [] and script.dependencies == ["mylib==1.0"]


@pytest.mark.parametrize(
    ("module", "dist"),
    [
        ("sklearn.metrics", "scikit-learn"), ("cv2", "opencv-python"), ("PIL.Image", "pillow"), ("yaml", "pyyaml"),
        ("bs4", "beautifulsoup4"), ("skimage.io", "scikit-image"), ("google.cloud.storage", "google-cloud-storage"),
        ("google", "google-cloud-storage"), ("google.cloud.bigquery", "google-cloud-bigquery"),
        ("google.protobuf", "protobuf"), ("dotenv", "python-dotenv"), ("attr", "attrs"),
        ("Crypto.Cipher", "pycryptodome"),
        ("docx", "python-docx"), ("fitz", "pymupdf"), ("jwt", "pyjwt"), ("serial", "pyserial"), ("torch", "torch"),
        ("huggingface_hub.utils", "huggingface-hub"), ("sentence_transformers", "sentence-transformers"),
    ],
)
def test_import_names_map_to_distributions(module, dist):
    assert distribution_for(module) == dist


def test_stdlib_relative_and_future_imports_are_not_dependencies():
    cell = "from __future__ import annotations\nimport os, json, collections.abc\nfrom .x import y\nimport yaml\n"
    script = script_of(cell)
    assert script.dependencies == [pinned("pyyaml")]
    assert script.imports == ["collections", "json", "os", "yaml"]
    assert script.text.index("from __future__ import annotations") < script.text.index("import os\nimport sys")


def test_no_pin_gives_bare_names():
    script = script_of(DATASETS_PUSH + "import yaml\n", "--no-pin")
    assert script.dependencies == ["datasets", "pyyaml"]


def test_with_merges_and_wins_over_the_inferred_requirement():
    script = script_of("import yaml\nimport numpy\n", "--with 'numpy<2' --with 'transformers[torch]>=4.40'")
    assert script.dependencies == ["numpy<2", pinned("pyyaml"), "transformers[torch]>=4.40"]


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    """Installed distributions of our own: a local version label, and two halves of a namespace package."""

    def dist(name: str, version: str, files: list[str]) -> None:
        info = tmp_path / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "RECORD").write_text("".join(f"{f},,\n" for f in [*files, f"{info.name}/METADATA"]))
        for f in files:
            (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f).write_text("")

    dist("fakegpu", "2.3.0+cu121", ["fakegpu/__init__.py"])
    dist("fakens-alpha", "1.0", ["fakens/alpha/__init__.py"])
    dist("fakens-beta", "2.0", ["fakens/beta/__init__.py"])
    monkeypatch.syspath_prepend(str(tmp_path))
    deps._packages_distributions.cache_clear()
    deps._files.cache_clear()
    yield tmp_path
    deps._packages_distributions.cache_clear()
    deps._files.cache_clear()


def test_pins_drop_local_labels_and_namespaces_resolve_by_subpackage(fake_site):
    script = script_of("import fakegpu\nfrom fakens import beta\nimport fakens.alpha as a\n")
    assert script.dependencies == ["fakegpu==2.3.0", "fakens-alpha==1.0", "fakens-beta==2.0"]
    assert script_of("import fakens\n").unresolved_imports == ["fakens"]


def test_ipython_syntax_is_reported_with_cell_line_numbers():
    cell = "import os\n%pip install einops\n!ls -la\nfiles = !ls\n%timeit sum([1])\nlen?\n!echo {os.sep}\nprint(1)\n"
    script = script_of(cell, first_line=2)
    assert script.ipython_only == [
        "line 3: `%pip install einops` cannot run in a job; declare the packages with --with instead",
        "line 5: `!ls` captures shell output with IPython syntax and cannot run in a job; "
        "use subprocess.run(..., capture_output=True, text=True)",
        "line 6: `%timeit` is an IPython magic and cannot run in a job",
        "line 7: `len?` is IPython help syntax and cannot run in a job",
        "line 8: `!echo {os.sep}` expands notebook variables ($x, {x}) and cannot run in a job; use subprocess.run",
    ]
    assert script.shell_commands == ["line 4: `!ls -la` runs as subprocess.run(..., shell=True, check=True)"]
    assert "subprocess.run('ls -la', shell=True, check=True)" in script.body
    assert "get_ipython().run_line_magic('pip', 'install einops')" in script.body
    assert "def get_ipython():" in script.text and "import subprocess" in script.text


def test_a_cell_magic_is_reported():
    script = script_of("%%time\nimport yaml\nprint(1)\n")
    assert script.ipython_only == ["line 1: `%%time` is an IPython cell magic and cannot run in a job"]


def test_leading_blank_lines_and_continuations_keep_line_numbers():
    cell = "\n\nx = 1\n%matplotlib \\\n  inline\n!pip install foo\n%env A=1\n"
    assert script_of(cell).ipython_only == [
        "line 4: `%matplotlib` is an IPython magic and cannot run in a job",
        "line 6: `!pip install foo` would install outside the job's environment; declare the packages with --with",
        "line 7: `%env` is an IPython magic and cannot run in a job",
    ]


def test_plain_python_gets_no_stub():
    script = script_of("print('hi')\n")
    assert "get_ipython" not in script.text and "subprocess" not in script.text and "def display" not in script.text


def test_display_works_outside_a_notebook():
    assert "def display(" in script_of("display(1)\n").text
    assert "def display(" not in script_of("from IPython.display import display\ndisplay(1)\n").text


def test_a_syntax_error_is_a_usage_error_with_its_line():
    with pytest.raises(UsageError, match="line 4: invalid syntax; the cell must be valid Python"):
        script_of("x = 1\n%time x\ndef f(:\n", first_line=2)


def test_an_explicit_script_block_wins():
    cell = """\
        # /// script
        # requires-python = ">=3.9"
        # dependencies = ["pyyaml<7", "requests"]
        #
        # [tool.uv]
        # exclude-newer = "2025-01-01T00:00:00Z"
        # ///
        import numpy
        import yaml
        %timeit 1
        """
    script = script_of(cell, "--with 'requests==2.0' --with rich", first_line=2)
    header = header_of(script)
    assert header["requires-python"] == ">=3.9"
    assert header["dependencies"] == ["pyyaml<7", "requests==2.0", "rich"]
    assert header["tool"]["uv"] == {"exclude-newer": "2025-01-01T00:00:00Z"}
    assert header["tool"]["hf-jobs"]["flavor"] == "cpu-basic"
    assert script.ipython_only == ["line 11: `%timeit` is an IPython magic and cannot run in a job"]
    assert script.unresolved_imports == []
    assert script.body.lstrip().startswith("import numpy")


def test_python_flag_sets_requires_python():
    assert header_of(script_of("x = 1\n"))["requires-python"] == ">={}.{}".format(*KERNEL_MINOR)
    assert header_of(script_of("x = 1\n", "--python 3.11"))["requires-python"] == "==3.11.*"
    assert script_of("x = 1\n", "--python 3.12.4").requires_python == "==3.12.4"


def test_tool_hf_jobs_table_is_what_hf_jobs_uv_run_reads():
    line = ("--flavor a10g-large --timeout 90m --image img:1 --python 3.12 --namespace org --name run1 "
            "--secrets WANDB_API_KEY --env LR=3e-4 --label team=nlp")
    header = parse_uv_script_header(script_of("x = 1\n", line).text)
    assert header is not None
    assert (header.flavor, header.timeout, header.image, header.python) == ("a10g-large", "90m", "img:1", "3.12")
    assert (header.namespace, header.name) == ("org", "run1")
    assert header.secrets == ["HF_TOKEN", "WANDB_API_KEY"]
    assert header.env == {"LR": "3e-4"} and header.labels == {"team": "nlp"}


def test_secret_values_never_reach_the_script():
    line = ("--secrets OPENAI_API_KEY=sk-abcdef123 --secrets HF_TOKEN=hf_literalvalue "
            "--env WANDB_API_KEY=wandb-value --env PLAIN=hf_tokenlike --env LR=1 --env TOKENIZERS_PARALLELISM=false")
    script = script_of("import os\nprint(os.environ['LR'])\n", line)
    for value in ("sk-abcdef123", "hf_literalvalue", "wandb-value", "hf_tokenlike"):
        assert value not in script.text
    header = parse_uv_script_header(script.text)
    assert header.secrets == ["HF_TOKEN", "OPENAI_API_KEY"]
    assert header.env == {"LR": "1", "TOKENIZERS_PARALLELISM": "false"}
    assert "--env WANDB_API_KEY is not written here" in script.text
    assert "log in (hf auth login) or set HF_TOKEN where you submit" in script.text
    assert "if not os.environ.get('OPENAI_API_KEY'):" in script.text


def test_no_token_means_no_secret_check():
    script = script_of("print(1)\n", "--no-token")
    assert "HF_TOKEN" not in script.text and "import os" not in script.text


def test_header_names_the_notebook():
    assert "from a %%hfjob cell of train.ipynb, cell 4." in script_of("x = 1\n", notebook="train.ipynb, cell 4").text


VARIABLES = {
    "lr": 3e-4, "epochs": 3, "name": "it's \"quoted\"\n\u00e9\U0001f600", "flag": True, "nothing": None,
    "cfg": {"layers": [64, 32], "dropout": 0.1, "tags": ("a", "b"), "nested": {"ok": False}},
}


def test_vars_become_literals_that_read_back_equal():
    script = script_of("print(lr)\n", "--vars " + ",".join(VARIABLES), variables=VARIABLES)
    namespace: dict = {}
    exec(compile("\n".join(line for line in script.text.splitlines() if line.startswith(tuple(VARIABLES))),
                 "vars", "exec"), namespace)
    assert {k: namespace[k] for k in VARIABLES} == VARIABLES
    assert script.text.index("lr = 0.0003") < script.text.index("print(lr)")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (object(), "a object value cannot be sent"),
        ({1, 2}, "a set value"),
        (float("nan"), "a float value"),
        ({1: "a"}, "a dict value"),
        ([1, [2, {"k": b"x"}]], "a bytes value"),
    ],
)
def test_vars_that_cannot_be_literals_are_named(value, fragment):
    with pytest.raises(UsageError, match=f"--vars bad: {fragment}") as info:
        script_of("x = 1\n", "--vars ok,bad", variables={"ok": 1, "bad": value})
    assert "None, bool, int, float, str, and lists, tuples and dicts" in str(info.value)


def test_missing_var_is_named():
    with pytest.raises(UsageError, match="--vars epochs: there is no variable 'epochs'"):
        script_of("x = 1\n", "--vars lr,epochs", variables={"lr": 1})


def test_huge_vars_are_refused():
    with pytest.raises(UsageError, match="push large data to the Hub"):
        script_of("x = 1\n", "--vars big", variables={"big": "x" * 40_000})


def test_cells_up_to_64_kib_work_and_larger_ones_are_refused_not_truncated():
    filler = "# " + "x" * 97 + "\n"
    cell = "print('start')\n" + filler * ((MAX_SCRIPT_BYTES - 15) // len(filler))
    cell += "#" * (MAX_SCRIPT_BYTES - len(cell.encode()) - 1) + "\n"
    assert len(cell.encode()) == MAX_SCRIPT_BYTES
    assert cell.strip() in script_of(cell).text
    with pytest.raises(UsageError, match="64.0 KiB; a job receives its script inline, at most 64 KiB"):
        script_of(cell + "x")


def test_epilogue_imports_count():
    script = build_script("x = 1\n", JobSpec(), epilogue="from huggingface_hub import HfApi\n")
    assert script.dependencies == [pinned("huggingface_hub")]
    assert script.text.rstrip().endswith("from huggingface_hub import HfApi")


# --- round trip: the same cell in-process and as a uv script in a subprocess ------------------

ROUND_TRIP_CELL = """\
import json
import statistics
import yaml

data = {"epochs": epochs, "scores": [statistics.mean([1, 2, 3]), 2.5], "name": "run-α"}
print(yaml.safe_dump(data, sort_keys=True, allow_unicode=True))
!echo shell says hi
print(json.dumps(sorted(data)))
"""


def uv_run(text: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    path = tmp_path / "job.py"
    path.write_text(text, encoding="utf-8")
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is a dependency of hfjobs-magic"
    full_env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", **env}
    return subprocess.run([uv, "run", "--no-project", "--quiet", str(path)], capture_output=True, text=True,
                          env=full_env, timeout=240, cwd=tmp_path)


def test_round_trip_same_output_in_the_kernel_and_in_uv_run(tmp_path, capfd):
    shell = InteractiveShell.instance()
    shell.user_ns["epochs"] = 3
    capfd.readouterr()
    assert shell.run_cell(ROUND_TRIP_CELL).success
    in_kernel = capfd.readouterr().out.replace("\r\n", "\n")  # IPython runs !cmd in a pty

    script = script_of(ROUND_TRIP_CELL, "--vars epochs --secrets WANDB_API_KEY", variables={"epochs": 3})
    assert script.ipython_only == [] and len(script.shell_commands) == 1
    done = uv_run(script.text, tmp_path, {"HF_TOKEN": "hf_dummy", "WANDB_API_KEY": "dummy"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == in_kernel
    assert "shell says hi" in done.stdout


def test_round_trip_a_missing_secret_fails_fast_with_its_name(tmp_path):
    script = script_of("print('should not run')\n", "--secrets WANDB_API_KEY")
    done = uv_run(script.text, tmp_path, {"HF_TOKEN": "hf_dummy", "WANDB_API_KEY": ""})
    assert done.returncode != 0 and "should not run" not in done.stdout
    assert "hfjob: secret WANDB_API_KEY is not set in this job; pass it with --secrets WANDB_API_KEY" in done.stderr


def test_round_trip_ipython_only_lines_fail_loudly(tmp_path):
    script = script_of("print('before')\n%timeit 1\n", "--no-token")
    done = uv_run(script.text, tmp_path, {})
    assert done.returncode != 0 and done.stdout == "before\n"
    assert "RuntimeError: this line used IPython syntax (%magic / !cmd), which cannot run in a job" in done.stderr
    assert "NameError" not in done.stderr


def test_generated_text_is_plain_python():
    for cell in (TRANSFORMERS_TRAINER, TORCH_LOOP, ROUND_TRIP_CELL, "%%time\nx = 1\n"):
        text = script_of(cell, "--vars epochs", variables={"epochs": 1}).text
        ast.parse(text)


def test_a_cell_nested_too_deeply_for_python_is_a_usage_error_not_a_crash():
    with pytest.raises(UsageError, match="nests too deeply for Python to compile"):
        script_of("x = " + "+".join(["1"] * 15_000))  # 30 kB: under the size limit, over any parser depth


def test_a_lone_surrogate_in_the_cell_is_a_usage_error_naming_its_line():
    with pytest.raises(UsageError, match=r"line 3: character U\+D800 is half of a surrogate pair"):
        script_of("x = 1\nprint('\ud800')", first_line=2)

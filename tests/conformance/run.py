"""Run huggingface_hub's own integration tests against the sandbox and print how many pass.

    python -m tests.conformance.run [--min 0.90] [--cache DIR] [PYTEST_ARGS...]

Downloads the sdist of the installed huggingface_hub (once, into `--cache`), extracts its
`tests/`, adds our `conftest.py` (the sdist has none), starts a `Sandbox` with the suite's fixed
user and token, runs pytest on the selection below in a subprocess, and prints passed / counted
per file and in total. Tests in `skips.SKIPS` (things only Hugging Face's servers have) and those
upstream marks as production-only are reported apart and left out of the count. Exits 1 when
the total pass rate is under `--min`.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from hfjobs_magic.sandbox import Sandbox
from tests.conformance.skips import SKIPS

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hfjobs-magic" / "conformance"
DEFAULT_MIN = 0.98  # where it stands: 357 / 357 on 2026-11-29; room for a flaky test or two

API_CLASSES = (
    "TestHfApiRepoFileExists TestHfApiEndpoints TestCommitApi TestHfApiUploadEmptyFile TestHfApiDeleteFolder"
    " TestHfApiListRepoTree TestHfApiTagEndpoint TestHfApiBranchEndpoint TestHfApiDeleteFiles TestHfApiPrivate"
    " TestHfLargefiles TestCommitInBackground TestHfApiTokenAttribute TestHfApiAuthCheck TestSquashHistory"
).split()
SELECTION = [f"tests/test_hf_api.py::{name}" for name in API_CLASSES] + [
    f"tests/{name}.py"
    for name in (
        "test_commit_scheduler test_snapshot_download test_buckets test_xet_upload"
        " test_upload_pipeline test_hf_file_system"
    ).split()
]

PYTEST_INI = """[pytest]
markers =
    api: upstream suite marker
    transfer: upstream suite marker
    inference: upstream suite marker
    xet: needs hf_xet
    no_xet: runs without hf_xet
    production: runs against huggingface.co
    deprecated(names): expects a FutureWarning
    git_lfs: needs git-lfs
    vcr: replays recorded HTTP
addopts = -p no:cacheprovider
"""


def suite_dir(cache: Path) -> Path:
    """The extracted sdist of the installed huggingface_hub, downloaded on first use."""
    release = version("huggingface_hub")
    root = cache / f"huggingface_hub-{release}"
    if not (root / "tests" / "testing_constants.py").exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"huggingface_hub=={release}", "--no-deps",
             "--no-binary", ":all:", "--dest", str(cache), "--quiet"],
            check=True,
        )
        with tarfile.open(cache / f"huggingface_hub-{release}.tar.gz") as sdist:
            sdist.extractall(cache, filter="data")
    return root


def prepare(root: Path, skips: dict[str, str]) -> None:
    """Our files next to upstream's: conftest, package marker, pytest.ini, the skip list."""
    shutil.copyfile(HERE / "upstream_conftest.py", root / "tests" / "conftest.py")
    (root / "tests" / "__init__.py").touch()
    (root / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    (root / "skips.json").write_text(json.dumps(skips, indent=1), encoding="utf-8")


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def counted(self) -> int:
        return self.outcomes["passed"] + self.outcomes["failed"]


def read_report(path: Path) -> tuple[dict[str, Tally], Counter]:
    """Per-file tallies from pytest's JUnit XML, and the reasons of every skip.

    A test that fails and then errors in teardown has two entries there: it counts once, failed.
    """
    outcomes: dict[tuple[str, str], tuple[str, str]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = (case.get("classname", ""), case.get("name", ""))
        if (skipped := case.find("skipped")) is not None:
            outcome = ("skipped", (skipped.get("message") or "").removeprefix("Skipped: ")[:100])
        elif case.find("failure") is not None or case.find("error") is not None:
            outcome = ("failed", "")
        else:
            outcome = ("passed", "")
        if key not in outcomes or outcome[0] == "failed":
            outcomes[key] = outcome
    files: dict[str, Tally] = defaultdict(Tally)
    reasons: Counter = Counter()
    for (classname, name), (outcome, reason) in outcomes.items():
        module = classname.split(".")
        tally = files[f"{module[1]}.py" if len(module) > 1 else "?"]
        tally.outcomes[outcome] += 1
        if outcome == "skipped":
            reasons[reason] += 1
        elif outcome == "failed":
            tally.failures.append(f"{'.'.join(module[2:])}::{name}")
    return files, reasons


def suite_sandbox(root: Path) -> Sandbox:
    """A sandbox with the accounts the suite was written for (`tests/testing_constants.py`)."""
    known = runpy.run_path(str(root / "tests" / "testing_constants.py"))
    org = "valid_org_hub"  # the org whoami must list (TestHfApiEndpoints)
    return Sandbox(user=known["USER"], token=known["TOKEN"], other_user=known["OTHER_USER"],
                   other_token=known["OTHER_TOKEN"], orgs=[org],
                   fullnames={known["USER"]: known["FULL_NAME"], org: "Dummy Hub Org"})


def run_suite(root: Path, pytest_args: list[str]) -> Path:
    """Start a sandbox with the suite's accounts and run the selection against it."""
    report = root / "report.xml"
    report.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="hfjob-conformance-") as home, suite_sandbox(root) as sandbox:
        env = {**os.environ, "HF_HOME": home, "HF_ENDPOINT": sandbox.endpoint,
               "HFJOB_CONFORMANCE_ENDPOINT": sandbox.endpoint, "HFJOB_CONFORMANCE_SKIPS": str(root / "skips.json"),
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1"}
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_CO_STAGING", "HF_HUB_DISABLE_XET"):
            env.pop(name, None)
        command = [sys.executable, "-m", "pytest", "-q", "--tb=short", "-rfE", "--timeout=180", f"--junitxml={report}",
                   "-o", "junit_family=xunit1", *(pytest_args or SELECTION)]
        subprocess.run(command, cwd=root, env=env, check=False)
    return report


def summarize(files: dict[str, Tally], reasons: Counter, minimum: float) -> bool:
    """Print the figure per file and in total; True when the total reaches `minimum`."""
    total = Tally()
    print("\nConformance: huggingface_hub's integration tests against the sandbox")
    for name, tally in sorted(files.items()):
        total.outcomes.update(tally.outcomes)
        print(f"  {name:32} {tally.outcomes['passed']:4} / {tally.counted:<4} passed"
              f"  ({tally.outcomes['skipped']} left out)")
        for failure in tally.failures:
            print(f"      failed: {failure}")
    rate = total.outcomes["passed"] / total.counted if total.counted else 0.0
    print("  left out, by reason:")
    for reason, count in reasons.most_common():
        print(f"    {count:4}  {reason}")
    print(f"TOTAL {total.outcomes['passed']} / {total.counted} passed ({rate:.1%}), "
          f"{total.outcomes['skipped']} left out; bar {minimum:.0%}")
    return total.counted > 0 and rate >= minimum


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=DEFAULT_MIN, help="the pass rate under which to fail")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the sdist is kept")
    args, pytest_args = parser.parse_known_args(argv)
    root = suite_dir(args.cache)
    prepare(root, SKIPS)
    files, reasons = read_report(run_suite(root, pytest_args))
    return 0 if summarize(files, reasons, args.min) else 1


if __name__ == "__main__":
    sys.exit(main())

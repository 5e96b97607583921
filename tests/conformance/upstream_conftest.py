"""The conftest that huggingface_hub's sdist lacks, for a run of its tests against the sandbox.

`run.py` copies this file into the extracted `tests/` as `conftest.py`. It points the suite's
staging constants at the sandbox (`HFJOB_CONFORMANCE_ENDPOINT`), gives the fixtures the tests
ask for (`api`, `repo_factory`), and skips, with their reason, the tests the runner's skip list
names and those upstream marks for places the sandbox is not (the production Hub, git-lfs).
Nothing here makes a test pass: it only builds what upstream's own conftest builds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from huggingface_hub import HfApi, RepoUrl

from . import testing_constants as constants
from .testing_utils import repo_name

ENDPOINT = os.environ["HFJOB_CONFORMANCE_ENDPOINT"]
constants.ENDPOINT_STAGING = ENDPOINT  # read by the test modules, imported after this one

MARKER_SKIPS = {
    "production": "runs against the production Hub (huggingface.co) and its data",
    "git_lfs": "needs git-lfs and a git remote (RUN_GIT_LFS_TESTS)",
    "no_xet": "runs without hf_xet, which is installed here",
}


def _skip_list() -> dict[str, str]:
    path = os.environ.get("HFJOB_CONFORMANCE_SKIPS")
    return json.loads(open(path, encoding="utf-8").read()) if path else {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip what the skip list names (by node id prefix) and what upstream marks as elsewhere."""
    listed = _skip_list()
    for item in items:
        reason = next((why for prefix, why in listed.items() if item.nodeid.startswith(prefix)), None)
        reason = reason or next((why for name, why in MARKER_SKIPS.items() if item.get_closest_marker(name)), None)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


class RepoFactory:
    """`repo_factory(repo_type, repo_id=..., token=..., **create_repo_kwargs)` -> RepoUrl, deleted after."""

    def __init__(self) -> None:
        self.created: list[tuple[HfApi, RepoUrl]] = []

    def __call__(self, repo_type: str = "model", *, repo_id: str | None = None, token: str | None = None,
                 **kwargs: object) -> RepoUrl:
        api = HfApi(endpoint=ENDPOINT, token=token or constants.TOKEN)
        url = api.create_repo(repo_id or repo_name(), repo_type=repo_type, **kwargs)
        self.created.append((api, url))
        return url

    def cleanup(self) -> None:
        for api, url in self.created:
            api.delete_repo(url.repo_id, repo_type=url.repo_type, missing_ok=True)


@pytest.fixture(scope="session")
def repo_factory() -> Iterator[RepoFactory]:
    factory = RepoFactory()
    yield factory
    factory.cleanup()


@pytest.fixture(scope="session")
def api() -> HfApi:
    return HfApi(endpoint=ENDPOINT, token=constants.TOKEN)

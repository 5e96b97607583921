"""Shared fixtures: a real sandbox on loopback and clients pointed at it."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

# Keep the developer's own Hugging Face login and cache out of every test.
_HF_HOME = tempfile.mkdtemp(prefix="hfjob-tests-hfhome-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ["HF_HOME"] = _HF_HOME
os.environ.pop("HF_TOKEN", None)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_UPDATE_CHECK"] = "1"
os.environ.pop("HF_HUB_DISABLE_XET", None)  # clients talk Xet to the sandbox, as to the Hub

from hfjobs_magic.sandbox import Sandbox  # noqa: E402


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """One sandbox for the whole session; tests use unique repo names."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def fresh_sandbox() -> Iterator[Sandbox]:
    """A sandbox of its own, for tests that inject faults or restart it."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture(autouse=True)
def _no_faults_left(sandbox: Sandbox) -> Iterator[None]:
    yield
    sandbox.faults.clear()


@pytest.fixture
def api(sandbox: Sandbox):
    from huggingface_hub import HfApi

    return HfApi(endpoint=sandbox.endpoint, token=sandbox.token)


@pytest.fixture
def read_api(sandbox: Sandbox):
    from huggingface_hub import HfApi

    return HfApi(endpoint=sandbox.endpoint, token=sandbox.read_token)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A repo name no other test uses."""
    import uuid

    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}".lower()

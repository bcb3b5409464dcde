"""Test-wide environment: offline, quiet, and Prefect's home in a temporary folder.

The defaults themselves live in one place, `dicepipe.environment`, applied when imported.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="dicepipe-tests-"))
# Tests are offline whatever the caller's environment says, and never share Prefect's home.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["PREFECT_HOME"] = str(_HOME / "prefect")
os.environ.setdefault("DICEPIPE_CACHE", str(REPO / ".cache"))
import dicepipe.environment  # noqa: E402, F401 - applies the defaults above and the rest


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[str]:
    """One Prefect API for the whole run, exported to every child process: a flow started in
    a subprocess (`dvc repro`, `python flows/...`) reports to it instead of starting an
    ephemeral server of its own, which costs ~11 s a flow. A caller's PREFECT_API_URL wins."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield server.api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


@pytest.fixture(scope="session")
def repro_project(tmp_path_factory, prefect_api: str):
    """One `dvc repro` of the sample for the whole test run (`tests.project.QUICK_REPRO`): the
    end-to-end tests use the copy, the scale-out test compares against its data."""
    from tests.project import reproduce

    return reproduce(tmp_path_factory.mktemp("repro"))


@pytest.fixture(scope="module")
def keep_torch_threads():
    """Labelling sets torch's thread count for the process (label.torch_threads); give the
    rest of the test session its own back."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)

"""The Prefect runtime environment: offline defaults and a Prefect home that exists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGURE = """
import os
from dicepipe.runtime import configure_environment
configure_environment()
print(os.environ["PREFECT_HOME"])
"""


def _fresh_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DICEPIPE_"))}
    return {**env, "DICEPIPE_CACHE": str(cache)}


def test_prefect_home_is_created_in_a_fresh_clone(tmp_path):
    cache = tmp_path / "clone" / ".cache"  # nothing of it exists yet
    args = [sys.executable, "-c", CONFIGURE]
    done = subprocess.run(args, env=_fresh_env(cache), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    home = Path(done.stdout.strip())
    assert home == (cache / "prefect").resolve() and home.is_dir()


@pytest.mark.slow
def test_a_stage_flow_starts_without_a_cache_folder(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"sample": {"synthetic": {"n": 2, "width": 32, "height": 24}}})
    )
    cache = tmp_path / "clone" / ".cache"
    args = [
        sys.executable,
        "flows/sample.py",
        "--params",
        str(params),
        "--out",
        str(tmp_path / "o"),
    ]
    done = subprocess.run(
        args, cwd=REPO, env=_fresh_env(cache), capture_output=True, text=True, timeout=110
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "o" / "summary.json").exists()


def _child() -> None:
    pass


def test_forked_children_exit_cleanly_after_a_flow_ran_in_the_parent():
    import multiprocessing

    from prefect import flow

    @flow
    def tiny() -> int:
        return 1

    assert tiny() == 1
    child = multiprocessing.get_context("fork").Process(target=_child)
    child.start()
    child.join(30)
    assert child.exitcode == 0  # Prefect's inherited thread-exit hooks would make it 1

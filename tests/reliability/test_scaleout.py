"""Many machines, on one: every data stage on an external Dask scheduler with two worker
processes on loopback, reporting to a Prefect API, writing its outputs to an object store (a
real S3 server), gives the bytes one local process writes to local folders."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dicepipe.layout import STAGE_FOLDERS
from tests.objectstore import s3_server
from tests.project import (
    DATA_STAGES,
    QUICK_DATA,
    copy_project,
    data_digests,
    digests,
    project_env,
    run,
)

WORKERS = 2


@contextmanager
def dask_cluster(root: Path) -> Iterator[str]:
    """`dask scheduler` and `dask worker --nworkers 2` as separate processes on loopback,
    started in the project folder `root` with its environment; the scheduler's address."""
    from distributed import Client

    scheduler_file = root / "scheduler.json"
    common = ["--dashboard-address", ":0"]
    env = project_env(root)
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
        + ["--port", "0", "--scheduler-file", str(scheduler_file), *common],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers = None
    try:
        deadline = time.monotonic() + 120
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address]
            + ["--nworkers", str(WORKERS), "--nthreads", "1", "--host", "127.0.0.1", *common],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(WORKERS, timeout=120)
        yield address
    finally:
        for process in (workers, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=60)


def _folder_args(stage: str, folders: dict[str, str]) -> list[str]:
    return [arg for name in STAGE_FOLDERS[stage] for arg in (f"--{name}", folders[name])]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, prefect_api: str) -> dict[str, Path]:
    """The data stages run on the cluster into the bucket, reporting to the test run's Prefect
    API (`prefect_api`, exported to the cluster's processes), and downloaded."""
    base = tmp_path_factory.mktemp("scaleout")
    with s3_server() as store:
        remote = copy_project(base / "remote", QUICK_DATA)
        with dask_cluster(remote) as address:
            runner = {"kind": "dask", "dask_address": address}
            from tests.project import set_params

            set_params(remote, {(stage, "runner"): runner for stage in DATA_STAGES})
            # the layout's folders, each under the bucket instead of the project
            urls = {
                name: f"{store.url}/{folder}"
                for stage in DATA_STAGES
                for name, folder in STAGE_FOLDERS[stage].items()
            }
            for stage in DATA_STAGES:
                folders = {n: f"{store.url}/{f}" for n, f in STAGE_FOLDERS[stage].items()}
                run([sys.executable, f"flows/{stage}.py", *_folder_args(stage, folders)], remote)
        import fsspec

        downloaded = base / "downloaded"
        fsspec.filesystem("s3").get(f"{store.url}/data/", f"{downloaded}/data/", recursive=True)
        assert urls  # every folder of the layout was a URL
    return {"remote": remote, "downloaded": downloaded}


def test_every_data_stage_writes_to_the_object_store_what_a_local_run_writes(
    outputs, repro_project
):
    """The local run: the test run's `dvc repro`, whose data stages have the same params."""
    card = "shards/README.md"  # says where to load the shards from: the folder or the URL
    local = {name: digest for name, digest in repro_project.data.items() if name != card}
    remote = data_digests(outputs["downloaded"], skip=(card,))
    assert sorted(remote) == sorted(local)
    assert remote == local
    assert sum(name.startswith("shards/") and name.endswith(".parquet") for name in local) > 4
    text = (outputs["downloaded"] / "data" / card).read_text()
    assert 'data_files="s3://dicepipe-test/data/shards/*.parquet"' in text


def test_nothing_of_the_run_lands_in_the_project_folder(outputs):
    written = digests(outputs["remote"] / "data")
    assert not [name for name in written if not name.startswith("sample/")]

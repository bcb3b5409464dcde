"""The Prefect runtime environment: offline defaults and a Prefect home that exists."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGURE = """
import os
import dicepipe.environment
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


def _fake_dask_cuda(monkeypatch, gpus: int) -> type:
    """dask_cuda as far as the runner uses it: LocalCUDACluster and the GPU count."""
    module, utils = types.ModuleType("dask_cuda"), types.ModuleType("dask_cuda.utils")
    module.LocalCUDACluster = type("LocalCUDACluster", (), {})
    utils.get_n_gpus = lambda: gpus
    module.utils = utils
    monkeypatch.setitem(sys.modules, "dask_cuda", module)
    monkeypatch.setitem(sys.modules, "dask_cuda.utils", utils)
    return module.LocalCUDACluster


def test_dask_cuda_starts_one_single_threaded_worker_per_gpu(monkeypatch):
    from dicepipe.params.runner import RunnerParams
    from dicepipe.runtime import make_task_runner

    cluster = _fake_dask_cuda(monkeypatch, gpus=4)
    monkeypatch.setattr("dicepipe.runtime.share_ephemeral_api", lambda: "http://127.0.0.1:9/api")
    runner = make_task_runner(RunnerParams(kind="dask-cuda", max_workers=4))
    assert runner.resolved_cluster_class is cluster
    assert runner.cluster_kwargs == {
        "n_workers": 4,
        "threads_per_worker": 1,
        "dashboard_address": None,
    }
    with pytest.raises(ValueError, match="max_workers is 5 but this machine shows 4 GPU"):
        make_task_runner(RunnerParams(kind="dask-cuda", max_workers=5))
    external = make_task_runner(RunnerParams(kind="dask-cuda", dask_address="tcp://head:8786"))
    assert external.address == "tcp://head:8786" and external.cluster_class is None


def test_dask_cuda_without_the_package_says_to_install_the_extra(monkeypatch, capsys):
    from dicepipe.entry import run_command
    from dicepipe.params.runner import RunnerParams
    from dicepipe.runtime import make_task_runner

    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # not installed, whatever this machine has
    monkeypatch.setattr("dicepipe.runtime.share_ephemeral_api", pytest.fail)  # checked first
    with pytest.raises(ImportError, match=r"needs the dask-cuda package.*\.\[cuda\]"):
        make_task_runner(RunnerParams(kind="dask-cuda"))
    never_run = types.SimpleNamespace(with_options=pytest.fail)

    def start():
        return never_run.with_options(task_runner=make_task_runner(RunnerParams("dask-cuda")))

    assert run_command(start) == 1  # the stage exits 1 and says why
    assert "pip install -e '.[cuda]'" in capsys.readouterr().err


def test_the_cluster_class_is_a_dotted_class_of_a_local_dask_cluster():
    from dicepipe.params.runner import RunnerParams

    assert RunnerParams(kind="dask").local_cluster_class == "distributed.LocalCluster"
    assert RunnerParams(kind="dask-cuda").local_cluster_class == "dask_cuda.LocalCUDACluster"
    swapped = RunnerParams(kind="dask-cuda", cluster_class="distributed.LocalCluster")
    assert swapped.local_cluster_class == "distributed.LocalCluster" and not swapped.pins_gpus
    assert RunnerParams(kind="dask-cuda", dask_address="tcp://h:8786").pins_gpus
    for bad in (
        {"kind": "threads", "cluster_class": "distributed.LocalCluster"},
        {"kind": "dask", "cluster_class": "LocalCluster"},
        {"kind": "dask", "dask_address": "tcp://h:8786", "cluster_class": "a.B"},
    ):
        with pytest.raises(ValueError, match="cluster_class"):
            RunnerParams(**bad)


def test_resources_are_validated_and_parsed():
    from dicepipe.params.runner import RunnerParams

    parsed = RunnerParams(kind="dask", resources=("GPU=1", "MEM=0.5")).task_resources()
    assert parsed == {"GPU": 1.0, "MEM": 0.5}
    for bad in (("GPU",), ("GPU=0",), ("GPU=one",), ("GPU=1", "GPU=2"), ("=1",)):
        with pytest.raises(ValueError, match="not a distinct NAME=positive amount"):
            RunnerParams(kind="dask", resources=bad)
    with pytest.raises(ValueError, match="only to Dask runners"):
        RunnerParams(kind="threads", resources=("GPU=1",))


def test_tasks_needing_a_resource_run_only_on_workers_that_have_it():
    """One scheduler, a `GPU=1` worker and a `CPU=1` worker: units submitted with `GPU=1` all
    land on the GPU worker, the others on either (the multi-node recipe of docs/scale.md)."""
    from distributed import Scheduler, SpecCluster, Worker
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect_dask import DaskTaskRunner

    from dicepipe.runtime import run_tasks

    @task(cache_policy=NO_CACHE)
    def where(unit: int) -> dict:
        from distributed import get_worker

        return {"unit": unit, "worker": get_worker().name}

    def worker(resource: str) -> dict:
        options = {"nthreads": 1, "resources": {resource: 1}}
        return {"cls": Worker, "options": options}

    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None}}
    workers = {"gpu": worker("GPU"), "cpu": worker("CPU")}
    with SpecCluster(scheduler=scheduler, workers=workers) as cluster:

        @flow(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
        def spread() -> list[dict]:
            return run_tasks(where, list(range(6)), label="units", resources={"GPU": 1})

        placed = spread()
    assert [p["unit"] for p in placed] == list(range(6))
    assert {p["worker"] for p in placed} == {"gpu"}

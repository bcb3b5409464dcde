"""Running stage units under Prefect: quiet offline environment, task runner, progress.

Prefect is imported inside functions: `configure_environment` must run before its first import.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dicepipe.params import RunnerParams

CACHE_DIR = Path(".cache")

# Offline and quiet defaults; an explicit value in the environment always wins.
ENVIRONMENT_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",  # never reach the Hugging Face Hub: weights come from local folders
    "HF_DATASETS_OFFLINE": "1",  # datasets must not look for remote scripts or data
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no telemetry from the ephemeral server
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # 2 slow cores need longer
    "PREFECT_LOGGING_LEVEL": "WARNING",  # stage summaries, not per-task chatter
    "DVC_NO_ANALYTICS": "1",
    "NO_ALBUMENTATIONS_UPDATE": "1",  # albumentations checks its version online at import
}


def configure_environment(cache_dir: Path | None = None) -> None:
    """Set offline/quiet defaults and put Prefect's home and caches under the project cache."""
    cache = (cache_dir or Path(os.environ.get("DICEPIPE_CACHE", CACHE_DIR))).resolve()
    for name, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("PREFECT_HOME", str(cache / "prefect"))
    os.environ.setdefault("HF_HOME", str(cache / "huggingface"))
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache / "numba"))
    os.environ.setdefault("DVC_SITE_CACHE_DIR", str(cache / "dvc-site"))
    # Prefect's ephemeral server keeps its SQLite database in PREFECT_HOME and does not create
    # missing parents: in a fresh clone (no .cache yet) every flow would time out at startup.
    home = Path(os.environ["PREFECT_HOME"]).expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create PREFECT_HOME {home}: {error}") from None
    _forget_parent_thread_exits_in_forked_children()


_FORK_HOOK_INSTALLED = False


def _forget_parent_thread_exits_in_forked_children() -> None:
    """Install (once) a fork hook that drops the thread-exit callbacks a child inherits.

    Prefect's background services register `threading._register_atexit` callbacks that drain
    their threads. A forked child (a DataLoader worker, a multiprocessing process) has none of
    those threads, so the inherited callback fails an assertion at the child's exit and every
    such child exits with status 1 once the parent has run a flow: DataLoader then reports
    "worker exited unexpectedly". The child's own exit callbacks are registered after the
    fork and are kept.
    """
    global _FORK_HOOK_INSTALLED
    if _FORK_HOOK_INSTALLED or not hasattr(os, "register_at_fork"):
        return
    import threading

    def forget() -> None:
        callbacks = getattr(threading, "_threading_atexits", None)
        if isinstance(callbacks, list):
            callbacks.clear()

    os.register_at_fork(after_in_child=forget)
    _FORK_HOOK_INSTALLED = True


def make_task_runner(params: RunnerParams) -> Any:
    """The Prefect task runner the params name: threads, or Dask (local cluster or address).

    A local cluster is `params.local_cluster_class` (LocalCluster for `dask`, dask-cuda's
    LocalCUDACluster for `dask-cuda`: one worker per GPU, each pinned to its device through
    CUDA_VISIBLE_DEVICES) with `max_workers` single-threaded worker processes; its class is
    imported here, so a missing dask-cuda stops the stage before anything runs.

    With a local cluster and no `PREFECT_API_URL`, this process's ephemeral Prefect API is
    started first and its URL exported, so the worker processes (which inherit the
    environment) report to it. Otherwise every worker starts an ephemeral server of its own
    on the same SQLite file: slow (seconds each) and racy. Workers of an existing cluster
    (`dask_address`) need `PREFECT_API_URL` of a `prefect server start` they can reach.
    """
    if params.kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=params.max_workers)
    from prefect_dask import DaskTaskRunner

    cluster_class = params.local_cluster_class
    if cluster_class is None:
        return DaskTaskRunner(address=params.dask_address)
    import_cluster_class(cluster_class)
    if params.pins_gpus:
        check_gpu_count(params.max_workers)
    share_ephemeral_api()
    return DaskTaskRunner(
        cluster_class=cluster_class,
        cluster_kwargs={
            "n_workers": params.max_workers,
            "threads_per_worker": 1,
            "dashboard_address": None,
        },
    )


DASK_CUDA_MISSING = (
    "runner.kind dask-cuda needs the dask-cuda package, which is not installed here: on the "
    "GPU machine run `pip install -e '.[cuda]'` (dask-cuda needs the NVIDIA driver), or use "
    "runner.kind dask or threads"
)


def import_cluster_class(path: str) -> type:
    """Import the Dask cluster class `module.Class`; the error says what to install or fix."""
    import importlib

    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] == "dask_cuda":
            raise ImportError(DASK_CUDA_MISSING) from None
        raise ImportError(f"runner.cluster_class {path!r}: {error}") from None
    except Exception as error:  # noqa: BLE001 - dask_cuda fails at import without NVML
        raise ImportError(
            f"runner.cluster_class {path!r}: importing {module_name} failed: "
            f"{type(error).__name__}: {error}"
        ) from None
    cluster = getattr(module, name, None)
    if not isinstance(cluster, type):
        raise ImportError(f"runner.cluster_class {path!r}: {module_name} has no class {name}")
    return cluster


def check_gpu_count(workers: int) -> None:
    """Raise unless this machine shows at least `workers` GPUs (dask-cuda: one each)."""
    from dask_cuda.utils import get_n_gpus

    try:
        gpus = get_n_gpus()
    except Exception as error:  # noqa: BLE001 - NVML missing or no driver
        raise RuntimeError(f"runner.kind dask-cuda: cannot count the GPUs here: {error}") from None
    if workers > gpus:
        raise ValueError(
            f"runner.max_workers is {workers} but this machine shows {gpus} GPU(s) "
            "(CUDA_VISIBLE_DEVICES limits them): dask-cuda runs one worker per GPU"
        )


def share_ephemeral_api() -> str:
    """Start the ephemeral Prefect API of this process (if no API is configured) and export
    its URL to child processes; the URL in use."""
    from prefect.settings import PREFECT_API_URL

    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        server.start()
        url = server.api_url
        os.environ["PREFECT_API_URL"] = url
    return url


def run_tasks(
    task: Any, units: Sequence[Any], *args: Any, label: str = "units"
) -> list[dict[str, Any]]:
    """Submit `task(unit, *args)` for every unit inside the running flow and gather manifests,
    in plan order, with a Prefect progress artifact and a terminal progress bar."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact
    from prefect.futures import as_completed
    from tqdm import tqdm

    futures = [task.submit(unit, *args) for unit in units]
    if not futures:
        return []
    artifact = create_progress_artifact(0.0, description=f"{label} done")
    with tqdm(total=len(futures), desc=label, unit="unit") as bar:
        for done, _ in enumerate(as_completed(futures), start=1):
            bar.update(1)
            update_progress_artifact(artifact, 100.0 * done / len(futures))
    return [future.result() for future in futures]


def publish_summary(title: str, table: list[dict[str, Any]], markdown: str) -> None:
    """Attach a counts table and a markdown summary to the running flow."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = title.lower().replace(" ", "-")
    create_table_artifact(table, key=f"{key}-counts", description=title)
    create_markdown_artifact(markdown, key=f"{key}-summary", description=title)


def stage_main(
    flow: Any,
    section: str,
    folders: dict[str, str],
    argv: Sequence[str] | None = None,
    description: str | None = None,
) -> int:
    """The command line of a stage entry point: `--params P` and one `--NAME DIR` per folder
    (in the flow's argument order), then the flow under the section's task runner; the exit
    status (0, or 1 with the error printed)."""
    import argparse

    from dicepipe.params import load

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml")
    for name, default in folders.items():
        parser.add_argument(f"--{name}", default=default)
    args = parser.parse_args(argv)
    paths = [getattr(args, name) for name in folders]
    return run_flow(flow, load(section, args.params).runner, args.params, *paths)


def run_flow(flow: Any, runner: RunnerParams, *args: Any) -> int:
    """Run a Prefect flow under the task runner its params name; the CLI exit status."""
    return call_main(lambda: flow.with_options(task_runner=make_task_runner(runner))(*args))


def call_main(flow_call: Callable[[], Any]) -> int:
    """Run a flow for a CLI entry point: exit status 0 on success, 1 with the error otherwise."""
    try:
        flow_call()
    except Exception as error:  # noqa: BLE001 - report any failure as a non-zero exit
        print(f"error: {type(error).__name__}: {error}")
        return 1
    return 0

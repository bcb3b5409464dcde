"""Running stage units under Prefect: the task runner the params name, progress, summaries.

Prefect is imported inside functions, after `dicepipe.environment` has configured it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from dicepipe.config import load_params
from dicepipe.entry import parser_for, run_command
from dicepipe.layout import STAGE_FOLDERS
from dicepipe.params.runner import RunnerParams


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
    task: Any,
    units: Sequence[Any],
    *args: Any,
    label: str = "units",
    resources: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Submit `task(unit, *args)` for every unit inside the running flow and gather manifests,
    in plan order, with a Prefect progress artifact and a terminal progress bar. `resources`
    (Dask runners) are the worker resources each task needs (`RunnerParams.task_resources`)."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact
    from prefect.futures import as_completed
    from tqdm import tqdm

    with _annotated(resources):
        futures = [task.submit(unit, *args) for unit in units]
    if not futures:
        return []
    artifact = create_progress_artifact(0.0, description=f"{label} done")
    with tqdm(total=len(futures), desc=label, unit="unit") as bar:
        for done, _ in enumerate(as_completed(futures), start=1):
            bar.update(1)
            update_progress_artifact(artifact, 100.0 * done / len(futures))
    return [future.result() for future in futures]


def _annotated(resources: Mapping[str, float] | None) -> Any:
    """A Dask annotation of the tasks submitted inside it (prefect-dask passes it on), or a
    no-op without resources."""
    if not resources:
        return contextlib.nullcontext()
    import dask

    return dask.annotate(resources=dict(resources))


def publish_summary(title: str, table: list[dict[str, Any]], markdown: str) -> None:
    """Attach a counts table and a markdown summary to the running flow."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = title.lower().replace(" ", "-")
    create_table_artifact(table, key=f"{key}-counts", description=title)
    create_markdown_artifact(markdown, key=f"{key}-summary", description=title)


def flow_main(
    flow: Any,
    stage: str,
    schema: type,
    description: str | None,
    argv: Sequence[str] | None = None,
) -> int:
    """The command line of a data-stage flow: `--params` and one `--NAME DIR` per folder of the
    stage (`dicepipe.layout.STAGE_FOLDERS`), then the flow under the task runner of the
    section's `runner`; the exit status of `dicepipe.entry.run_command`."""
    folders = STAGE_FOLDERS[stage]
    args = parser_for(description, folders).parse_args(argv)

    def run() -> None:
        params = load_params(schema, args.params)
        runner = make_task_runner(params.runner)
        flow.with_options(task_runner=runner)(args.params, *(getattr(args, n) for n in folders))

    return run_command(run)

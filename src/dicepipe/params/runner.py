"""`runner` of every data stage: which Prefect task runner executes the per-unit tasks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from dicepipe.config import bounded

Runner = Literal["threads", "dask", "dask-cuda"]

# The local Dask cluster each Dask kind starts when `cluster_class` is not given.
DEFAULT_CLUSTER_CLASS = {
    "dask": "distributed.LocalCluster",
    "dask-cuda": "dask_cuda.LocalCUDACluster",
}
_RESOURCE = re.compile(r"[A-Za-z_][\w-]*")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


@dataclass(frozen=True)
class RunnerParams:
    """Which Prefect task runner executes the per-shard tasks.

    kind: `threads` (one process), `dask` (a local cluster of `max_workers` processes) or
    `dask-cuda` (one worker process per GPU, each pinned to its device by LocalCUDACluster:
    the first `max_workers` GPUs). `dask_address`: an existing scheduler instead of a local
    cluster (its workers started with `dask worker` or, for GPUs, `dask cuda worker`).
    `cluster_class`: the local cluster's class as a dotted path; None is the kind's default.
    `resources`: Dask worker resources each task needs, `NAME=amount` (e.g. `GPU=1`): on one
    scheduler whose workers were started with `--resources "GPU=1"` or `"CPU=1"`, the label
    tasks then run only on GPU workers and the others on CPU workers (docs/scale.md).
    """

    kind: Runner = "threads"
    max_workers: int = bounded(2, lo=1)  # threads, worker processes, or GPUs (dask-cuda)
    dask_address: str | None = None  # an existing scheduler; None starts a local cluster
    cluster_class: str | None = None  # None: DEFAULT_CLUSTER_CLASS[kind]
    resources: tuple[str, ...] = ()  # Dask worker resources per task, NAME=amount

    def __post_init__(self) -> None:
        self.task_resources()  # validates them
        if self.resources and self.kind == "threads":
            raise ValueError("resources apply only to Dask runners (kind dask or dask-cuda)")
        if self.cluster_class is None:
            return
        if self.kind == "threads" or self.dask_address:
            raise ValueError("cluster_class applies only to a local Dask cluster (no dask_address)")
        if not _DOTTED.fullmatch(self.cluster_class):
            raise ValueError(f"cluster_class {self.cluster_class!r} is not a dotted module.Class")

    def task_resources(self) -> dict[str, float]:
        """`resources` as Dask's annotation wants it: {"GPU": 1.0}."""
        parsed: dict[str, float] = {}
        for entry in self.resources:
            name, sep, amount = entry.partition("=")
            try:
                value = float(amount)
            except ValueError:
                value = -1.0
            if not sep or not _RESOURCE.fullmatch(name) or value <= 0 or name in parsed:
                raise ValueError(f"resources: {entry!r} is not a distinct NAME=positive amount")
            parsed[name] = value
        return parsed

    @property
    def local_cluster_class(self) -> str | None:
        """The dotted class of the local Dask cluster to start; None for threads or an address."""
        if self.kind == "threads" or self.dask_address:
            return None
        return self.cluster_class or DEFAULT_CLUSTER_CLASS[self.kind]

    @property
    def pins_gpus(self) -> bool:
        """True when every worker is a dask-cuda worker whose own GPU is `cuda` (cuda:0)."""
        return self.kind == "dask-cuda" and self.cluster_class is None

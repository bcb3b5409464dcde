"""`loader` section: which shards the training loader reads and how it mixes tasks."""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from typing import ClassVar

from dicepipe.config import bounded
from dicepipe.tasks import TASKS

# Relative sampling weight of each shard task, renormalised over the tasks present; one field
# per task of the registry, defaulting to its paper weight.
TaskWeights = make_dataclass(
    "TaskWeights",
    [(spec.name, float, bounded(spec.weight, lo=0.0)) for spec in TASKS if spec.in_shards],
    frozen=True,
)
TaskWeights.__module__ = __name__
TaskWeights.__doc__ = "Relative sampling weight of each task; renormalised over those present."


@dataclass(frozen=True)
class LoaderParams:
    """Training loader: which shards, how tasks are mixed, batching and resolution."""

    SECTION: ClassVar[str] = "loader"

    shards: str = "data/shards"
    seed: int = 0
    weights: TaskWeights = field(default_factory=TaskWeights)
    batch_size: int = bounded(8, lo=1)
    num_workers: int = bounded(2, lo=0)  # DataLoader worker processes per rank
    resolution: int | None = bounded(
        256, lo=8
    )  # square side images and targets are resized to; null: native

    def __post_init__(self) -> None:
        if sum(vars(self.weights).values()) <= 0:
            raise ValueError("at least one task weight must be positive")

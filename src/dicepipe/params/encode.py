"""`encode` section: raw labels -> RGB targets -> Parquet shards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from dicepipe.config import bounded
from dicepipe.params.points import PointParams
from dicepipe.params.runner import RunnerParams
from dicepipe.tasks import SHARD_TASKS


@dataclass(frozen=True)
class DepthTargetParams:
    """How metric depth becomes an RGB target."""

    space: Literal["disparity", "depth"] = "disparity"
    quantiles: tuple[float, float] = (0.02, 0.98)

    def __post_init__(self) -> None:
        lo, hi = self.quantiles
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"depth.quantiles must satisfy 0 <= lo < hi <= 1, got {lo}, {hi}")


@dataclass(frozen=True)
class ColorParams:
    """Instance colour drawing for entity/semantic targets (RGB Euclidean distances)."""

    min_black_distance: float = bounded(80.0, lo=0.0, hi=441.0)
    min_distance: float = bounded(60.0, lo=0.0, hi=441.0)


Task = Literal[SHARD_TASKS]  # the tasks the encode stage can make (dicepipe.tasks)


@dataclass(frozen=True)
class EncodeParams:
    """`encode` stage: raw labels -> RGB targets -> Parquet shards."""

    SECTION: ClassVar[str] = "encode"

    seed: int = 0
    tasks: tuple[Task, ...] = SHARD_TASKS
    depth: DepthTargetParams = field(default_factory=DepthTargetParams)
    points: PointParams = field(default_factory=PointParams)
    colors: ColorParams = field(default_factory=ColorParams)
    shard_bytes: int = bounded(512 * 1024**2, lo=1)  # target size of one shard file
    row_group_bytes: int = bounded(100 * 1024**2, lo=1)  # target size of one Parquet row group
    runner: RunnerParams = field(default_factory=RunnerParams)

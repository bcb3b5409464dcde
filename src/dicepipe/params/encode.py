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
    """Instance colours of entity/semantic targets (RGB Euclidean distances).

    scheme: "random" draws a seeded random colour per instance (DICEPTION); "layout" derives
    it from the instance's centroid and size, which a one-step regressor can learn (the mean
    of random colours is one grey, hence one mask).
    """

    scheme: Literal["random", "layout"] = "random"
    min_black_distance: float = bounded(80.0, lo=0.0, hi=441.0)
    min_distance: float = bounded(60.0, lo=0.0, hi=441.0)


@dataclass(frozen=True)
class PoseTargetParams:
    """Size of the pose target's keypoint discs and limb lines.

    `radius` and `thickness` are pixels at a short side of `reference_side`; an image with
    another short side scales them (at least 1 px), so a figure's discs keep their share of
    it at any resolution. `reference_side` null: the same pixels for every image.
    """

    radius: float = bounded(4.0, lo=0.5)
    thickness: float = bounded(3.0, lo=0.5)
    reference_side: int | None = None

    def __post_init__(self) -> None:
        if self.reference_side is not None and self.reference_side < 1:
            raise ValueError(f"pose.reference_side must be >= 1, got {self.reference_side}")

    def sizes(self, height: int, width: int) -> tuple[int, int]:
        """(radius, thickness) in pixels for an image of height x width."""
        scale = 1.0 if self.reference_side is None else min(height, width) / self.reference_side
        return max(1, round(self.radius * scale)), max(1, round(self.thickness * scale))


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
    pose: PoseTargetParams = field(default_factory=PoseTargetParams)
    shard_bytes: int = bounded(512 * 1024**2, lo=1)  # target size of one shard file
    row_group_bytes: int = bounded(100 * 1024**2, lo=1)  # target size of one Parquet row group
    runner: RunnerParams = field(default_factory=RunnerParams)

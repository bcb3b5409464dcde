"""`sample` section: which items to take from each source."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from dicepipe.config import bounded
from dicepipe.params.points import PointParams
from dicepipe.params.runner import RunnerParams


@dataclass(frozen=True)
class OpenImagesParams:
    """An OpenImages mirror: the published index CSV and a folder or URL of `<ImageID>.jpg`."""

    index: str = ""
    images: str = ""
    n: int = bounded(0, lo=0)
    block_rows: int = bounded(10_000, lo=1)  # index rows per work unit
    apply_rotation: bool = True  # turn by the index's `Rotation` (degrees counterclockwise)
    verify_md5: bool = False  # check `OriginalMD5`; only mirrors of the original files match


@dataclass(frozen=True)
class Sa1bParams:
    """SA-1B tar files (globs or URLs), streamed member by member."""

    tars: tuple[str, ...] = ()
    n: int = bounded(0, lo=0)
    min_area: int = bounded(0, lo=0)  # mask pixels; empty masks are always dropped
    min_stability_score: float = bounded(0.0, lo=0.0, hi=1.0)
    min_predicted_iou: float = bounded(0.0, lo=0.0, hi=1.0)
    max_annotations: int | None = None  # keep this many largest masks per image; None: all
    points: PointParams = field(default_factory=PointParams)  # `max` stored per mask
    max_member_mb: int = bounded(256, lo=1)  # larger tar members are quarantined, never read
    # SA-1B masks always feed point-prompted segmentation; also entity segmentation when true
    # (DICEPTION takes entities from EntityV2 only)
    entity: bool = False

    def __post_init__(self) -> None:
        if self.max_annotations is not None and self.max_annotations < 1:
            raise ValueError(f"max_annotations must be >= 1 or null, got {self.max_annotations}")


# The tasks a COCO-format dataset's annotations can feed (DICEPTION Table S1: COCO 2017 person
# keypoints -> pose, COCO-Rem -> semantic segmentation, EntityV2 -> entity segmentation).
CocoTask = Literal["entity_segmentation", "semantic_segmentation", "pose"]
RESERVED_SOURCE_NAMES = ("openimages", "sa1b", "synthetic", "composite")


@dataclass(frozen=True)
class CocoParams:
    """One COCO-format dataset: an annotations JSON, a folder or URL of images, and its role.

    `name` is the dataset's source name: the prefix of its keys (`coco_rem/<id>`) and unit
    names, and its `source` column in the shards. `tasks` are what its annotations feed: masks
    with categories give `semantic_segmentation`, masks used class-agnostically give
    `entity_segmentation`, person keypoints give `pose`.
    """

    name: str = "coco"
    annotations: str = ""
    images: str = ""
    n: int = bounded(0, lo=0)
    block_images: int = bounded(5_000, lo=1)  # images (in id order) per work unit
    tasks: tuple[CocoTask, ...] = ("pose",)
    # only images with an annotation for the role are candidates (pose: labelled keypoints)
    only_annotated: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"coco dataset name {self.name!r}: use lower-case letters, digits, _")
        if self.name in RESERVED_SOURCE_NAMES:
            raise ValueError(f"coco dataset name {self.name!r} is another source's name")
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"coco dataset {self.name}: tasks must be non-empty and distinct")


@dataclass(frozen=True)
class SyntheticParams:
    """Procedurally rendered rooms with exact labels (`sources.synthetic.scenes`)."""

    n: int = bounded(0, lo=0)  # scenes to render
    per_unit: int = bounded(1000, lo=1)  # scenes per work unit
    width: int = bounded(96, lo=16, hi=4096)
    height: int = bounded(72, lo=16, hi=4096)
    people_prob: float = bounded(0.5, lo=0.0, hi=1.0)  # chance that a scene holds a person
    split: Literal["train", "heldout"] = "train"  # splits draw disjoint render seeds
    points: PointParams = field(default_factory=PointParams)  # `max` stored per mask


@dataclass(frozen=True)
class SampleParams:
    """`sample` stage: which items to take from each source."""

    SECTION: ClassVar[str] = "sample"

    seed: int = 0
    max_pixels: int = bounded(50_000_000, lo=1)
    openimages: OpenImagesParams = field(default_factory=OpenImagesParams)
    sa1b: Sa1bParams = field(default_factory=Sa1bParams)
    coco: tuple[CocoParams, ...] = ()  # COCO-format datasets, each with its role
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)
    runner: RunnerParams = field(default_factory=RunnerParams)

    def __post_init__(self) -> None:
        names = [dataset.name for dataset in self.coco]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"coco dataset names must be unique: {', '.join(twice)} repeats")

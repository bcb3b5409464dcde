"""`evaluate` section: the evaluation stage and the scheduled re-evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from dicepipe.config import bounded
from dicepipe.params.runner import RunnerParams
from dicepipe.targets.thresholds import MaskDecodeParams, PoseDecodeParams

EvalTask = Literal["depth", "normal", "point_segmentation", "entity_segmentation", "pose"]
BenchmarkName = Literal[
    "heldout", "nyuv2", "kitti", "kitti_garg", "scannet", "diode", "eth3d", "coco"
]


@dataclass(frozen=True)
class EvalSamplingParams:
    """How the model is sampled (DICEPTION: 28 Euler steps, guidance 2); `ensemble` samples
    per input are combined per pixel by `reduce` (Marigold's test-time ensembling)."""

    steps: int = bounded(28, lo=1)
    guidance: float = bounded(2.0, lo=0.0)
    shift: float = bounded(3.0, lo=1e-6)
    one_step: bool = False
    ensemble: int = bounded(1, lo=1)
    reduce: Literal["median", "mean"] = "median"
    seed: int = 0


@dataclass(frozen=True)
class HeldoutParams:
    """Held-out synthetic scenes: the renderer's `heldout` split of corpus seed `seed` (the
    `sample.seed` whose training split they must never repeat), with exact labels."""

    n: int = bounded(32, lo=1)
    # Scored at this size (predictions are resized to it). Decoding the ground truth drawn
    # as targets reaches pose AP ~0.1 at 96 x 72 (figures ~30 px tall), ~0.6 at 192 x 144.
    width: int = bounded(192, lo=16, hi=4096)
    height: int = bounded(144, lo=16, hi=4096)
    people_prob: float = bounded(0.5, lo=0.0, hi=1.0)
    seed: int = 0


@dataclass(frozen=True)
class BenchmarkParams:
    """One benchmark: `heldout`, a depth benchmark (archive `path` + Marigold `split` file) or
    `coco` (images folder/zip `path`, `instances` and/or `keypoints` JSON, member `prefix`)."""

    name: BenchmarkName = "heldout"
    path: str = ""
    split: str = ""
    instances: str = ""
    keypoints: str = ""
    prefix: str = ""
    limit: int | None = None  # first N samples; null: all

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"benchmark {self.name}: limit must be >= 1 or null")
        if self.name != "heldout" and not self.path:
            raise ValueError(f"benchmark {self.name} needs a path")
        if self.name == "coco" and not (self.instances or self.keypoints):
            raise ValueError("benchmark coco needs instances and/or keypoints")
        if self.name not in ("heldout", "coco") and not self.split:
            raise ValueError(f"benchmark {self.name} needs a split file")


@dataclass(frozen=True)
class BaselineParams:
    """Trivial baselines scored beside the model: the mean training depth map and normal
    (from `scenes` rendered training scenes, or the depth/normal targets of `shards`), a disc
    of `disc_radius` (fraction of the shorter side) around the prompt points, one whole-image
    mask or none for entities; pose has none."""

    source: Literal["synthetic", "shards"] = "synthetic"
    scenes: int = bounded(32, lo=1)
    shards: str = "data/shards"
    max_rows: int = bounded(256, lo=1)  # shard targets averaged per task
    disc_radius: float = bounded(0.1, lo=0.0, hi=1.0)
    entity: Literal["whole", "none"] = "whole"


@dataclass(frozen=True)
class ReevaluateParams:
    """Scheduled re-evaluation: model folders matching `checkpoints` (globs), each evaluated
    once by the sha256 of its weights; every `interval_minutes` or on `cron` (one of them)."""

    checkpoints: tuple[str, ...] = (
        "runs/train/checkpoints/checkpoint-*/model",
        "runs/train/model",
    )
    history: str = "metrics/history"  # <weights sha256>.json per evaluated checkpoint
    log: str = "metrics/history.jsonl"
    plot: str = "metrics/history.png"
    interval_minutes: float | None = 30.0
    cron: str | None = None
    runner: RunnerParams = field(default_factory=RunnerParams)

    def __post_init__(self) -> None:
        if (self.interval_minutes is None) == (self.cron is None):
            raise ValueError("reevaluate: set exactly one of interval_minutes and cron")
        if self.interval_minutes is not None and self.interval_minutes <= 0:
            raise ValueError("reevaluate.interval_minutes must be > 0")
        if not self.checkpoints:
            raise ValueError("reevaluate.checkpoints needs at least one glob")


@dataclass(frozen=True)
class EvaluateParams:
    """`evaluate` stage: the model on held-out scenes and public benchmarks, beside trivial
    baselines; resolution null: the training resolution in the model's `inference.json`."""

    SECTION: ClassVar[str] = "evaluate"

    model: str = "runs/train/model"
    device: str = "auto"  # auto | cpu | cuda | cuda:N (bf16 autocast on CUDA)
    resolution: int | None = bounded(None, lo=8)
    batch_size: int = bounded(8, lo=1)
    threads: int | None = bounded(None, lo=1)  # torch CPU threads; null: torch's default
    tasks: tuple[EvalTask, ...] = (
        "depth",
        "normal",
        "point_segmentation",
        "entity_segmentation",
        "pose",
    )
    depth_space: Literal["disparity", "depth"] = "disparity"  # encode.depth.space of training
    # encode.colors.scheme of training: the colours of the entity targets previews show beside
    # the predictions (AP compares masks, not colours)
    entity_colors: Literal["random", "layout"] = "random"
    point_counts: tuple[int, ...] = (1, 5)
    max_prompted_masks: int = bounded(8, lo=1)  # largest masks prompted per image
    min_mask_area: int = bounded(16, lo=1)  # smaller masks are never prompted
    sampling: EvalSamplingParams = field(default_factory=EvalSamplingParams)
    heldout: HeldoutParams = field(default_factory=HeldoutParams)
    benchmarks: tuple[BenchmarkParams, ...] = (BenchmarkParams(),)
    baseline: BaselineParams = field(default_factory=BaselineParams)
    masks: MaskDecodeParams = field(default_factory=MaskDecodeParams)
    keypoints: PoseDecodeParams = field(default_factory=PoseDecodeParams)
    metrics: str = "metrics/eval.json"
    out: str = "metrics/eval"  # samples.csv, headline.csv, bars.png, preview-<task>.png
    previews: int = bounded(4, lo=0)  # rows per preview grid
    reevaluate: ReevaluateParams = field(default_factory=ReevaluateParams)

    def __post_init__(self) -> None:
        if not self.tasks or not self.benchmarks:
            raise ValueError("tasks and benchmarks must not be empty")
        if not self.point_counts or not all(1 <= k <= 5 for k in self.point_counts):
            raise ValueError("point_counts must be numbers of points in 1..5")
        names = [b.name for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmark names must be unique, got {names}")

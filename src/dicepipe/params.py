"""The schema of every `params.yaml` section: one frozen dataclass per stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dicepipe.composite import CompositeParams
from dicepipe.config import bounded, load_section

Runner = Literal["threads", "dask"]


@dataclass(frozen=True)
class RunnerParams:
    """Which Prefect task runner executes the per-shard tasks."""

    kind: Runner = "threads"
    max_workers: int = bounded(2, lo=1)
    dask_address: str | None = None  # an existing scheduler; None starts a LocalCluster


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
    prompt_points: int = bounded(5, lo=1, hi=5)  # points stored per mask (encode takes a prefix)
    max_member_mb: int = bounded(256, lo=1)  # larger tar members are quarantined, never read

    def __post_init__(self) -> None:
        if self.max_annotations is not None and self.max_annotations < 1:
            raise ValueError(f"max_annotations must be >= 1 or null, got {self.max_annotations}")


@dataclass(frozen=True)
class CocoParams:
    """COCO: an annotations JSON (person keypoints or instances) and a folder or URL of images."""

    annotations: str = ""
    images: str = ""
    n: int = bounded(0, lo=0)
    block_images: int = bounded(5_000, lo=1)  # images (in id order) per work unit


@dataclass(frozen=True)
class SampleParams:
    """`sample` stage: which items to take from each source."""

    seed: int = 0
    max_pixels: int = bounded(50_000_000, lo=1)
    openimages: OpenImagesParams = field(default_factory=OpenImagesParams)
    sa1b: Sa1bParams = field(default_factory=Sa1bParams)
    coco: CocoParams = field(default_factory=CocoParams)
    runner: RunnerParams = field(default_factory=RunnerParams)


@dataclass(frozen=True)
class GeometryNormalsParams:
    """Normals from the teacher's depth: unproject with the focal length, cross the tangents."""

    max_relative_jump: float = bounded(0.05, lo=0.0)  # larger relative steps are occlusions
    step: int = bounded(1, lo=1)  # tangent baseline in pixels


@dataclass(frozen=True)
class MarigoldParams:
    """The diffusion normal teacher (diffusers MarigoldNormalsPipeline)."""

    weights: str = "prs-eth/marigold-normals-v1-1"  # local folder or hub id (local cache only)
    num_inference_steps: int | None = None  # None: the checkpoint's default
    ensemble_size: int = bounded(1, lo=1)
    processing_resolution: int | None = None  # None: the checkpoint's default; 0: input size
    seed: int = 0


@dataclass(frozen=True)
class LabelParams:
    """`label` stage: which teacher labels which sources, and how.

    teacher: `auto` uses exact labels where a source ships them and Depth Pro elsewhere (and
    stops with an error saying where to put its weights when they are missing);
    `ground_truth` only exact labels; `depth_pro` always Depth Pro.
    """

    teacher: Literal["auto", "ground_truth", "depth_pro"] = "auto"
    normals: Literal["geometry", "marigold", "none"] = "geometry"
    weights: str = "apple/DepthPro-hf"  # Depth Pro: local folder or hub id
    allow_download: bool = False  # never download weights unless this is true
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 on CUDA
    use_exif_focal: bool = True  # EXIF 35 mm focal length beats the FOV head when present
    ground_truth_dir: str = "data/sample/labels"
    sources: tuple[str, ...] = ("openimages",)
    batch_size: int = bounded(8, lo=1)
    num_workers: int = bounded(2, lo=0)  # DataLoader workers decoding images
    cache_dir: str = ".cache/labels"  # per-item label cache of the model teachers
    geometry: GeometryNormalsParams = field(default_factory=GeometryNormalsParams)
    marigold: MarigoldParams = field(default_factory=MarigoldParams)
    runner: RunnerParams = field(default_factory=RunnerParams)


@dataclass(frozen=True)
class MattingRoots:
    """Roots (folders or fsspec URLs) of the three matting datasets; empty = not used."""

    p3m: str = ""  # P3M-10k: train/blurred_image/*.jpg + train/mask/*.png
    am2k: str = ""  # AM-2k: train/original/*.jpg + train/mask/*.png
    aim500: str = ""  # AIM-500: original/*.jpg + mask/*.png


@dataclass(frozen=True)
class CompositeStageParams:
    """`composite` stage: hair-matting composites for point-prompted segmentation."""

    seed: int = 0
    count: int = bounded(0, lo=0)  # composites to make (paper: 200000)
    per_unit: int = bounded(1000, lo=1)  # composites per work unit
    foregrounds: MattingRoots = field(default_factory=MattingRoots)
    backgrounds: str = "pool"  # "pool" (sampled images) or a glob/URL of background images
    background_sources: tuple[str, ...] = ("openimages", "sa1b")  # the pool's sources
    geometry: CompositeParams = field(default_factory=CompositeParams)
    runner: RunnerParams = field(default_factory=RunnerParams)


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
class PointParams:
    """How many prompt points a point-segmentation example gets."""

    min: int = bounded(1, lo=1, hi=5)
    max: int = bounded(5, lo=1, hi=5)

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(f"points.min ({self.min}) must not exceed points.max ({self.max})")


@dataclass(frozen=True)
class ColorParams:
    """Instance colour drawing for entity/semantic targets (RGB Euclidean distances)."""

    min_black_distance: float = bounded(80.0, lo=0.0, hi=441.0)
    min_distance: float = bounded(60.0, lo=0.0, hi=441.0)


Task = Literal[
    "depth", "normal", "point_segmentation", "entity_segmentation", "semantic_segmentation", "pose"
]


@dataclass(frozen=True)
class EncodeParams:
    """`encode` stage: raw labels -> RGB targets -> Parquet shards."""

    seed: int = 0
    tasks: tuple[Task, ...] = (
        "depth",
        "normal",
        "point_segmentation",
        "entity_segmentation",
        "semantic_segmentation",
        "pose",
    )
    depth: DepthTargetParams = field(default_factory=DepthTargetParams)
    points: PointParams = field(default_factory=PointParams)
    colors: ColorParams = field(default_factory=ColorParams)
    shard_bytes: int = bounded(512 * 1024**2, lo=1)  # target size of one shard file
    row_group_bytes: int = bounded(100 * 1024**2, lo=1)  # target size of one Parquet row group
    runner: RunnerParams = field(default_factory=RunnerParams)


def load_sample(path: str | Path = "params.yaml") -> SampleParams:
    """The validated `sample` section."""
    return load_section(path, "sample", SampleParams)


def load_label(path: str | Path = "params.yaml") -> LabelParams:
    """The validated `label` section."""
    return load_section(path, "label", LabelParams)


def load_composite(path: str | Path = "params.yaml") -> CompositeStageParams:
    """The validated `composite` section."""
    return load_section(path, "composite", CompositeStageParams)


def load_encode(path: str | Path = "params.yaml") -> EncodeParams:
    """The validated `encode` section."""
    return load_section(path, "encode", EncodeParams)


@dataclass(frozen=True)
class TaskWeights:
    """Relative sampling weight of each task; renormalised over the tasks present (paper)."""

    depth: float = bounded(15.0, lo=0.0)
    normal: float = bounded(15.0, lo=0.0)
    point_segmentation: float = bounded(20.0, lo=0.0)
    entity_segmentation: float = bounded(20.0, lo=0.0)
    semantic_segmentation: float = bounded(20.0, lo=0.0)
    pose: float = bounded(20.0, lo=0.0)


@dataclass(frozen=True)
class LoaderParams:
    """Training loader: which shards, how tasks are mixed, batching and resolution."""

    shards: str = "data/shards"
    seed: int = 0
    weights: TaskWeights = field(default_factory=TaskWeights)
    batch_size: int = bounded(8, lo=1)
    num_workers: int = bounded(2, lo=0)  # DataLoader worker processes per rank
    resolution: int | None = 256  # square side images and targets are resized to; null: native

    def __post_init__(self) -> None:
        if self.resolution is not None and self.resolution < 8:
            raise ValueError(f"resolution must be >= 8 or null, got {self.resolution}")
        if sum(vars(self.weights).values()) <= 0:
            raise ValueError("at least one task weight must be positive")


def load_loader(path: str | Path = "params.yaml") -> LoaderParams:
    """The validated `loader` section."""
    return load_section(path, "loader", LoaderParams)

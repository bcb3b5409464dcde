"""The schema of every `params.yaml` section: one frozen dataclass per stage."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Literal

from dicepipe.config import bounded, load_section
from dicepipe.tasks import SHARD_TASKS, TASKS

Runner = Literal["threads", "dask", "dask-cuda"]

# The local Dask cluster each Dask kind starts when `cluster_class` is not given.
DEFAULT_CLUSTER_CLASS = {
    "dask": "distributed.LocalCluster",
    "dask-cuda": "dask_cuda.LocalCUDACluster",
}
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


@dataclass(frozen=True)
class RunnerParams:
    """Which Prefect task runner executes the per-shard tasks.

    kind: `threads` (one process), `dask` (a local cluster of `max_workers` processes) or
    `dask-cuda` (one worker process per GPU, each pinned to its device by LocalCUDACluster:
    the first `max_workers` GPUs). `dask_address`: an existing scheduler instead of a local
    cluster (its workers started with `dask worker` or, for GPUs, `dask cuda worker`).
    `cluster_class`: the local cluster's class as a dotted path; None is the kind's default.
    """

    kind: Runner = "threads"
    max_workers: int = bounded(2, lo=1)  # threads, worker processes, or GPUs (dask-cuda)
    dask_address: str | None = None  # an existing scheduler; None starts a local cluster
    cluster_class: str | None = None  # None: DEFAULT_CLUSTER_CLASS[kind]

    def __post_init__(self) -> None:
        if self.cluster_class is None:
            return
        if self.kind == "threads" or self.dask_address:
            raise ValueError("cluster_class applies only to a local Dask cluster (no dask_address)")
        if not _DOTTED.fullmatch(self.cluster_class):
            raise ValueError(f"cluster_class {self.cluster_class!r} is not a dotted module.Class")

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


@dataclass(frozen=True)
class PointParams:
    """How many prompt points an example gets: k uniform in [min, max] (DICEPTION: 1-5).

    The one vocabulary of point counts: `sample.sa1b.points` (SA-1B stores `max` points per
    mask, drawn by `sampling.pixel_draw`), `composite.geometry.points` and `encode.points`.
    """

    min: int = bounded(1, lo=1, hi=5)
    max: int = bounded(5, lo=1, hi=5)

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(f"points.min ({self.min}) must not exceed points.max ({self.max})")


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
    normals: `geometry`, `marigold`, `none`, or `module:factory`, a normals teacher of your
    own (`dicepipe.teachers.plugin`), whose checkpoint `normals_weights` names.
    """

    teacher: Literal["auto", "ground_truth", "depth_pro"] = "auto"
    normals: str = "geometry"  # geometry | marigold | none | module:factory
    normals_weights: str = ""  # the plug-in's checkpoint (folder or hub id), for its factory
    weights: str = "apple/DepthPro-hf"  # Depth Pro: local folder or hub id
    allow_download: bool = False  # never download weights unless this is true
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 on CUDA
    use_exif_focal: bool = True  # EXIF 35 mm focal length beats the FOV head when present
    ground_truth_dir: str = "data/sample/labels"
    sources: tuple[str, ...] = ("openimages",)
    batch_size: int = bounded(8, lo=1)
    num_workers: int = bounded(2, lo=0)  # threads decoding images ahead of the teacher
    # torch CPU threads of the labelling, set in every task whatever the runner (Dask workers
    # default to 1, thread runners to all cores; the count changes float results)
    torch_threads: int = bounded(1, lo=1)
    cache_dir: str = ".cache/labels"  # per-item label cache of the model teachers
    geometry: GeometryNormalsParams = field(default_factory=GeometryNormalsParams)
    marigold: MarigoldParams = field(default_factory=MarigoldParams)
    runner: RunnerParams = field(default_factory=RunnerParams)

    def __post_init__(self) -> None:
        if self.normals not in BUILTIN_NORMALS and not _FACTORY.fullmatch(self.normals):
            raise ValueError(
                f"normals {self.normals!r} is not one of {', '.join(BUILTIN_NORMALS)} "
                "nor a plug-in `module:factory` (e.g. my_teachers.stable_normal:build)"
            )
        if self.runner.pins_gpus and self.device not in ("auto", "cuda", "cuda:0"):
            raise ValueError(
                f"device {self.device!r} with runner.kind dask-cuda: each worker is pinned to "
                "its own GPU, which it sees as cuda:0; use device auto (or cuda)"
            )


BUILTIN_NORMALS = ("geometry", "marigold", "none")
_FACTORY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class MattingRoots:
    """Roots (folders or fsspec URLs) of the three matting datasets; empty = not used."""

    p3m: str = ""  # P3M-10k: train/blurred_image/*.jpg + train/mask/*.png
    am2k: str = ""  # AM-2k: train/original/*.jpg + train/mask/*.png
    aim500: str = ""  # AIM-500: original/*.jpg + mask/*.png


@dataclass(frozen=True)
class CompositeParams:
    """The `composite:` section of params.yaml (see each field's comment)."""

    size: int = 512  # output side in pixels (square)
    scale_min: float = 0.6  # foreground scale after fitting its longer side to `size`
    scale_max: float = 1.0
    rotate_deg: float = 30.0  # rotation drawn uniformly in [-rotate_deg, rotate_deg]
    translate_frac: float = 0.15  # centre shift, fraction of `size`, per axis
    hflip_prob: float = 0.5
    bg_blur_prob: float = 0.3  # chance of a Gaussian blur of the background
    bg_blur_sigma_max: float = 2.0  # its sigma is uniform in [0, max], in output pixels
    bg_noise_prob: float = 0.3  # chance of Gaussian noise on the background
    bg_noise_std_max: float = 6.0  # its std is uniform in [0, max], 0-255 units
    mask_threshold: float = 0.5  # target mask = alpha > mask_threshold
    point_threshold: float = 0.5  # prompt points are drawn where alpha > point_threshold
    points: PointParams = field(default_factory=PointParams)
    min_mask_pixels: int = 64  # fewer pixels above point_threshold -> CompositeError

    def __post_init__(self) -> None:
        checks = {
            "size >= 16": self.size >= 16,
            "0 < scale_min <= scale_max": 0 < self.scale_min <= self.scale_max,
            "rotate_deg >= 0": self.rotate_deg >= 0,
            "0 <= translate_frac <= 1": 0 <= self.translate_frac <= 1,
            "probabilities in [0, 1]": all(
                0 <= p <= 1 for p in (self.hflip_prob, self.bg_blur_prob, self.bg_noise_prob)
            ),
            "bg_blur_sigma_max, bg_noise_std_max >= 0": min(
                self.bg_blur_sigma_max, self.bg_noise_std_max
            )
            >= 0,
            "thresholds in [0, 1)": all(
                0 <= t < 1 for t in (self.mask_threshold, self.point_threshold)
            ),
            "min_mask_pixels >= points.max": self.min_mask_pixels >= self.points.max,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid composite params: {', '.join(failed)}")


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
class ColorParams:
    """Instance colour drawing for entity/semantic targets (RGB Euclidean distances)."""

    min_black_distance: float = bounded(80.0, lo=0.0, hi=441.0)
    min_distance: float = bounded(60.0, lo=0.0, hi=441.0)


Task = Literal[SHARD_TASKS]  # the tasks the encode stage can make (dicepipe.tasks)


@dataclass(frozen=True)
class EncodeParams:
    """`encode` stage: raw labels -> RGB targets -> Parquet shards."""

    seed: int = 0
    tasks: tuple[Task, ...] = SHARD_TASKS
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


@dataclass(frozen=True)
class MaskDecodeParams:
    """Thresholds of the mask decoder (paper symbols in brackets)."""

    #: [sigma] a pixel belongs to a centre within this Euclidean RGB distance; keep it at
    #: most half the minimal distance between instance colours.
    rgb_tolerance: float = 30.0
    #: a pixel farther than rgb_tolerance from every centre joins its nearest centre's mask
    #: when within this distance (recovers edges blurred by JPEG chroma subsampling);
    #: None: only rgb_tolerance, as in the paper.
    assign_tolerance: float | None = 60.0
    #: cluster centres closer than this to (0, 0, 0) are background and yield no mask.
    black_tolerance: float = 40.0
    #: [xi] masks with fewer pixels after morphology are dropped; also the smallest colour
    #: mass the split refinement separates.
    min_area: int = 32
    #: [k] side of the square kernel of the opening then closing; <= 1 disables morphology.
    kernel_size: int = 3
    #: [eta] masks with more connected components (8-connected) are dropped as fragmented.
    max_components: int = 8
    #: [beta] of two masks with IoU >= this, only the larger is kept.
    duplicate_iou: float = 0.8
    #: pixels this close to a centre are certain: morphology never removes them from that
    #: colour's mask, and hole filling and closing never add them to another colour's mask
    #: (so a small instance inside a large one, or black background in a concave corner, is
    #: not swallowed). None disables the protection (paper).
    keep_distance: float | None = 15.0
    #: Gaussian sigma (in bins) smoothing each 256-bin channel histogram before peak finding.
    histogram_sigma: float = 1.0
    #: a histogram peak needs a prominence of at least this fraction of the pixel count.
    peak_prominence: float = 0.001
    #: upper bound on the number of KMeans clusters, refinement included.
    max_clusters: int = 64
    #: two colour groups closer than this are never split apart by the refinement.
    split_distance: float = 40.0
    #: width of the colour bins KMeans clusters (each bin sits at its pixels' mean colour).
    quantization: int = 8
    #: KMeans restarts of the first fit (random_state comes from the seed).
    n_init: int = 4

    def __post_init__(self) -> None:
        """Reject values that make the decoder meaningless."""
        if self.rgb_tolerance <= 0 or self.black_tolerance < 0:
            raise ValueError("rgb_tolerance must be > 0 and black_tolerance >= 0")
        if self.min_area < 1 or self.max_components < 1 or self.max_clusters < 1:
            raise ValueError("min_area, max_components and max_clusters must be >= 1")
        if not 0 < self.duplicate_iou <= 1:
            raise ValueError("duplicate_iou must be in (0, 1]")
        if not 2 <= self.quantization <= 128 or self.n_init < 1:
            raise ValueError("quantization must be in [2, 128] and n_init >= 1")


@dataclass(frozen=True)
class PoseDecodeParams:
    """Thresholds of the keypoint decoder (paper symbols in brackets)."""

    #: [sigma] a pixel is red when within this Euclidean RGB distance of (255, 0, 0); the
    #: limb colours of `encode_pose` are all >= 170 away.
    rgb_tolerance: float = 70.0
    #: red components with fewer pixels are noise.
    min_area: int = 4
    #: area / (pi * R**2), R the largest centroid-to-pixel distance, at or above which a
    #: component is a single disc (a digital disc scores about 1, two touching discs 0.43).
    circularity: float = 0.8
    #: disc radius of the encoder, for the expected disc area when no disc is circular.
    radius: float = 4.0
    #: at most this many discs are split out of one component.
    max_discs: int = 17
    #: [xi] a centre is kept when its nearest GT keypoint is closer than this (pixels).
    distance_threshold: float = 10.0

    def __post_init__(self) -> None:
        """Reject values that make the decoder meaningless."""
        if self.rgb_tolerance <= 0 or self.radius <= 0 or self.distance_threshold <= 0:
            raise ValueError("rgb_tolerance, radius and distance_threshold must be > 0")
        if self.min_area < 1 or self.max_discs < 1:
            raise ValueError("min_area and max_discs must be >= 1")


# Every params section and its schema: what `load` and the stage entry points validate against.
SECTIONS: dict[str, type] = {
    "sample": SampleParams,
    "label": LabelParams,
    "composite": CompositeStageParams,
    "encode": EncodeParams,
    "loader": LoaderParams,
}


def load(section: str, path: str | Path = "params.yaml") -> Any:
    """The validated params section `section` (one of `SECTIONS`)."""
    if section not in SECTIONS:
        raise KeyError(f"unknown params section {section!r}; known: {', '.join(SECTIONS)}")
    return load_section(path, section, SECTIONS[section])


@dataclass(frozen=True)
class TrainFlowParams:
    """Rectified-flow loss of the `train` stage (diffusers' SD3 training-script defaults)."""

    weighting_scheme: Literal["logit_normal", "mode", "cosmap", "sigma_sqrt", "none"] = (
        "logit_normal"
    )
    logit_mean: float = 0.0
    logit_std: float = bounded(1.0, lo=0.0)
    mode_scale: float = 1.29  # only for weighting_scheme "mode"
    shift: float = 3.0  # SD3-medium's scheduler shift
    prompt_dropout: float = bounded(0.1, lo=0.0, hi=1.0)  # empty prompt, for guidance
    point_dropout: float = bounded(0.1, lo=0.0, hi=1.0)  # all points "no point", for guidance
    # One-step deterministic mode (D3-Predictor, Lotus): t = 1, zero noise, the model regresses
    # the target; sample it with `one_step: true` (the timestep density is then unused).
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.logit_std <= 0 or self.shift <= 0:
            raise ValueError("flow.logit_std and flow.shift must be > 0")


@dataclass(frozen=True)
class ModelOverrides:
    """Changes to a from-scratch preset's size (null keeps the preset's value)."""

    num_layers: int | None = None
    num_attention_heads: int | None = None
    attention_head_dim: int | None = None
    patch_size: int | None = None
    joint_attention_dim: int | None = None
    caption_projection_dim: int | None = None
    pooled_projection_dim: int | None = None
    pos_embed_max_size: int | None = None
    task_token_length: int | None = None  # learned prompt tokens per task
    point_frequencies: int | None = None  # random Fourier features of a prompt point
    # How the input image reaches the transformer: sequence (DICEPTION: its own tokens) or
    # channels (Marigold/Lotus: a second patch embedding added to the noisy tokens).
    condition: Literal["sequence", "channels"] | None = None
    point_map: bool | None = None  # prompt points also drawn as blobs added to the image tokens

    def __post_init__(self) -> None:
        small = [
            name
            for name, value in vars(self).items()
            if isinstance(value, int) and not isinstance(value, bool) and value < 1
        ]
        if small:
            raise ValueError(f"model.{small[0]} must be >= 1 or null")

    def given(self) -> dict[str, Any]:
        """The overrides that are set."""
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class EmaParams:
    """Exponential moving average of the weights (diffusers.training_utils.EMAModel).

    When enabled the saved model folder holds the averaged weights (what evaluate and predict
    load); checkpoints keep the raw weights and the EMA state, so a resume is exact.
    """

    enabled: bool = False
    decay: float = bounded(0.9999, lo=0.0, hi=1.0)  # the ceiling of the decay
    min_decay: float = bounded(0.0, lo=0.0, hi=1.0)
    update_after_step: int = bounded(0, lo=0)  # optimizer steps before averaging starts
    use_ema_warmup: bool = False  # decay = 1 - (1 + step / inv_gamma) ** -power
    inv_gamma: float = bounded(1.0, lo=0.0)
    power: float = bounded(2 / 3, lo=0.0)


@dataclass(frozen=True)
class TaskLossWeights:
    """Per-task multipliers of the training loss (1: the plain mean over the batch)."""

    depth: float = bounded(1.0, lo=0.0)
    normal: float = bounded(1.0, lo=0.0)
    point_segmentation: float = bounded(1.0, lo=0.0)
    entity_segmentation: float = bounded(1.0, lo=0.0)
    semantic_segmentation: float = bounded(1.0, lo=0.0)
    pose: float = bounded(1.0, lo=0.0)


@dataclass(frozen=True)
class TrainParams:
    """`train` stage: the generalist on the shards, on accelerate (see dicepipe.train.loop).

    batch_size, resolution and num_workers override the `loader` section's when set.
    resume: null starts over (the output's checkpoints are removed), `latest` continues from
    the newest complete checkpoint made with the same params (apart from steps and the
    checkpoint/logging knobs), a path continues from that checkpoint.
    """

    preset: Literal["tiny", "sd3-medium"] = "tiny"  # size of a from-scratch model
    model: ModelOverrides = field(default_factory=ModelOverrides)
    pretrained: str | None = None  # local SD3 folder (or cached hub id): latent space, its VAE
    resolution: int | None = None  # square side in pixels; null: loader.resolution
    batch_size: int | None = None  # per device; null: loader.batch_size
    num_workers: int | None = None  # DataLoader workers per rank; null: loader.num_workers
    threads: int | None = None  # torch CPU threads per rank; null: torch's default
    grad_accum: int = bounded(1, lo=1)
    steps: int = bounded(1000, lo=1)  # optimizer steps
    lr: float = 2e-5  # the peak rate, AdamW (paper: 2e-5, constant)
    # diffusers.optimization.get_scheduler: constant | constant_with_warmup | linear | cosine |
    # cosine_with_restarts | polynomial | piecewise_constant
    lr_scheduler: Literal[
        "constant",
        "constant_with_warmup",
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
    ] = "constant"
    lr_warmup_steps: int = bounded(0, lo=0)
    use_8bit_adam: bool = False  # bitsandbytes.optim.AdamW8bit (a clear error when missing)
    ema: EmaParams = field(default_factory=EmaParams)
    hflip_prob: float = bounded(0.0, lo=0.0, hi=1.0)  # random horizontal flips (train.augment)
    task_loss_weights: TaskLossWeights = field(default_factory=TaskLossWeights)
    preview_every: int = bounded(0, lo=0)  # steps between DVCLive preview grids; 0: none
    preview_rows: int = bounded(1, lo=1)  # held examples per task in a preview grid
    weight_decay: float = bounded(1e-4, lo=0.0)  # diffusers' SD3 training-script default
    max_grad_norm: float = bounded(1.0, lo=0.0)  # 0: no clipping
    seed: int = 0
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA
    gradient_checkpointing: bool = False
    checkpoint_every: int = bounded(500, lo=1)  # steps; the last step is always saved too
    keep_checkpoints: int = bounded(3, lo=1)
    resume: str | None = None  # null | latest | a checkpoint folder
    output: str = "runs/train"  # model/, checkpoints/, live/ (dvclive), loss.png
    metrics: str = "metrics/train.json"
    flow: TrainFlowParams = field(default_factory=TrainFlowParams)
    log_every: int = bounded(1, lo=1)  # steps between logged points
    trace: bool = False  # each rank writes the samples it consumed to <output>/trace/

    def __post_init__(self) -> None:
        checks = {
            "lr > 0": self.lr > 0,
            "resolution >= 8 or null": self.resolution is None or self.resolution >= 8,
            "batch_size >= 1 or null": self.batch_size is None or self.batch_size >= 1,
            "num_workers >= 0 or null": self.num_workers is None or self.num_workers >= 0,
            "threads >= 1 or null": self.threads is None or self.threads >= 1,
            "resume is null, latest or a path": self.resume is None or self.resume.strip() != "",
            "sd3-medium needs pretrained (its VAE)": (
                self.preset != "sd3-medium" or self.pretrained is not None
            ),
            "model overrides only without pretrained": (
                self.pretrained is None or not self.model.given()
            ),
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid train params: {', '.join(failed)}")


SECTIONS["train"] = TrainParams


def load_train(path: str | Path = "params.yaml") -> TrainParams:
    """The validated `train` section."""
    return load_section(path, "train", TrainParams)


# --- evaluate: the evaluation stage and the scheduled re-evaluation (dicepipe.evaluate) ---

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
    baselines; resolution null: the checkpoint's `inference.json`, else its config's size."""

    model: str = "runs/train/model"
    device: str = "auto"  # auto | cpu | cuda | cuda:N (bf16 autocast on CUDA)
    resolution: int | None = None
    batch_size: int = bounded(8, lo=1)
    threads: int | None = None  # torch CPU threads; null: torch's default
    tasks: tuple[EvalTask, ...] = (
        "depth",
        "normal",
        "point_segmentation",
        "entity_segmentation",
        "pose",
    )
    depth_space: Literal["disparity", "depth"] = "disparity"  # encode.depth.space of training
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
        if self.resolution is not None and self.resolution < 8:
            raise ValueError(f"resolution must be >= 8 or null, got {self.resolution}")
        if not self.tasks or not self.benchmarks:
            raise ValueError("tasks and benchmarks must not be empty")
        if not self.point_counts or not all(1 <= k <= 5 for k in self.point_counts):
            raise ValueError("point_counts must be numbers of points in 1..5")
        names = [b.name for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmark names must be unique, got {names}")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1 or null")


SECTIONS["evaluate"] = EvaluateParams


def load_evaluate(path: str | Path = "params.yaml") -> EvaluateParams:
    """The validated `evaluate` section."""
    return load_section(path, "evaluate", EvaluateParams)


@dataclass(frozen=True)
class FinetuneParams:
    """`finetune` stage: few-shot LoRA on a task the base model never saw (DICEPTION: rank 128
    on attention q, k, v, ~50 examples, a new prompt). Only the adapter and the new task's
    embedding train; the adapter is saved in diffusers' LoRA format."""

    base: str = "runs/train/model"  # the trained model folder the adapter goes on
    task: Literal["highlight"] = "highlight"  # a registry task made here, not by encode
    shards: str = "data/shards"  # the images the few-shot pairs are made from
    sources: tuple[str, ...] = ("openimages", "sa1b", "coco", "coco_rem", "entityv2", "synthetic")
    examples: int = bounded(50, lo=1)  # training pairs (paper: 50)
    heldout: int = bounded(8, lo=0)  # further pairs scored after training
    resolution: int | None = None  # null: the base model's training resolution
    rank: int = bounded(128, lo=1)
    target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v")
    steps: int = bounded(200, lo=1)
    batch_size: int = bounded(8, lo=1)
    lr: float = 2e-5  # the peak rate, AdamW (paper: 2e-5, constant)
    # diffusers.optimization.get_scheduler: constant | constant_with_warmup | linear | cosine |
    # cosine_with_restarts | polynomial | piecewise_constant
    lr_scheduler: Literal[
        "constant",
        "constant_with_warmup",
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
    ] = "constant"
    lr_warmup_steps: int = bounded(0, lo=0)
    use_8bit_adam: bool = False  # bitsandbytes.optim.AdamW8bit (a clear error when missing)
    ema: EmaParams = field(default_factory=EmaParams)
    hflip_prob: float = bounded(0.0, lo=0.0, hi=1.0)  # random horizontal flips (train.augment)
    task_loss_weights: TaskLossWeights = field(default_factory=TaskLossWeights)
    preview_every: int = bounded(0, lo=0)  # steps between DVCLive preview grids; 0: none
    preview_rows: int = bounded(1, lo=1)  # held examples per task in a preview grid
    seed: int = 0
    threads: int | None = None  # torch CPU threads; null: torch's default
    device: str = "auto"
    flow: TrainFlowParams = field(default_factory=TrainFlowParams)  # as the base was trained
    output: str = "runs/finetune"  # lora/ (adapter + task row), loss.png
    metrics: str = "metrics/finetune.json"

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.resolution is not None and self.resolution < 8:
            raise ValueError(f"resolution must be >= 8 or null, got {self.resolution}")
        if not self.target_modules:
            raise ValueError("target_modules must name at least one module")


SECTIONS["finetune"] = FinetuneParams

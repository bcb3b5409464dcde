"""`label` section: which teacher labels which sources, and how."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from dicepipe.config import bounded
from dicepipe.params.runner import RunnerParams

BUILTIN_NORMALS = ("geometry", "marigold", "none")
_FACTORY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


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

    SECTION: ClassVar[str] = "label"

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
    # A per-item label cache of the model teachers (a folder), off by default: the label units
    # already hold every label once; a cache keeps them across a regrouping of the sample.
    cache_dir: str | None = None
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

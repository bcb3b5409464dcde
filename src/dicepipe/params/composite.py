"""`composite` section: hair-matting composites for point-prompted segmentation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from dicepipe.config import bounded
from dicepipe.params.points import PointParams
from dicepipe.params.runner import RunnerParams


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

    SECTION: ClassVar[str] = "composite"

    seed: int = 0
    count: int = bounded(0, lo=0)  # composites to make (paper: 200000)
    per_unit: int = bounded(1000, lo=1)  # composites per work unit
    foregrounds: MattingRoots = field(default_factory=MattingRoots)
    backgrounds: str = "pool"  # "pool" (sampled images) or a glob/URL of background images
    background_sources: tuple[str, ...] = ("openimages", "sa1b")  # the pool's sources
    geometry: CompositeParams = field(default_factory=CompositeParams)
    runner: RunnerParams = field(default_factory=RunnerParams)

"""Hair-matting composites: a matted foreground pasted onto another image.

DICEPTION synthesises point-prompted segmentation data "with fine-grained hair masks":
foregrounds from P3M-10k, AM-2k and AIM-500 are cut out by their alpha mattes, randomly
rotated, resized and flipped, and pasted onto other images. Every random choice of one
composite comes from `numpy.random.default_rng([seed, index])`, so any composite can be
regenerated alone, byte for byte.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from dicepipe.composite_foreground import (
    cached_foreground,
    estimate_foreground,
    foreground_cache_key,
)
from dicepipe.composite_geometry import (
    draw_background_jitter,
    draw_placement,
    place_foreground,
    prepare_background,
)

__all__ = [
    "Composite",
    "CompositeError",
    "CompositeParams",
    "blend",
    "cached_foreground",
    "estimate_foreground",
    "foreground_cache_key",
    "make_composite",
    "mask_target",
    "sample_points",
]


class CompositeError(ValueError):
    """A composite that cannot be made (e.g. too little foreground left on the canvas)."""


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
    points_min: int = 1
    points_max: int = 5
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
            "1 <= points_min <= points_max <= 5": 1 <= self.points_min <= self.points_max <= 5,
            "min_mask_pixels >= points_max": self.min_mask_pixels >= self.points_max,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid composite params: {', '.join(failed)}")


@dataclass(frozen=True)
class Composite:
    """One composite and its labels, all (size, size)."""

    image: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray  # (H, W) uint8, round(alpha * 255)
    target: np.ndarray  # (H, W, 3) uint8, white where alpha > mask_threshold, black elsewhere
    points: np.ndarray  # (k, 2) float32, ((x + 0.5) / W, (y + 0.5) / H), 1 <= k <= 5
    meta: dict = field(default_factory=dict)  # the drawn placement and background jitter


def _quantise(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def blend(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """alpha*F + (1-alpha)*B in float32 (0-255 units), rounded and clipped once to uint8."""
    a = alpha.astype(np.float32)[..., None]
    return _quantise(a * fg.astype(np.float32) + (1.0 - a) * bg.astype(np.float32))


def mask_target(alpha: np.ndarray, threshold: float) -> np.ndarray:
    """The point-segmentation target: (H, W, 3) uint8, 255 where alpha > threshold, else 0."""
    mask = np.where(alpha > threshold, np.uint8(255), np.uint8(0))
    return np.repeat(mask[..., None], 3, axis=2)


def sample_points(
    alpha: np.ndarray, rng: np.random.Generator, params: CompositeParams
) -> np.ndarray:
    """Draw points_min..points_max distinct pixels with alpha > point_threshold, normalised."""
    inside = np.flatnonzero(alpha.ravel() > params.point_threshold)
    if inside.size < params.min_mask_pixels:
        raise CompositeError(
            f"empty_composite: {inside.size} pixels with alpha > {params.point_threshold}"
            f" (need {params.min_mask_pixels})"
        )
    k = int(rng.integers(params.points_min, params.points_max + 1))
    y, x = np.divmod(rng.choice(inside, size=k, replace=False), alpha.shape[1])
    h, w = alpha.shape
    return np.stack([(x + 0.5) / w, (y + 0.5) / h], axis=1).astype(np.float32)


def _foreground_255(fg_rgb: np.ndarray) -> np.ndarray:
    if fg_rgb.dtype == np.uint8:
        return fg_rgb.astype(np.float32)
    return np.clip(fg_rgb.astype(np.float32), 0.0, 1.0) * 255.0


def make_composite(
    fg_rgb: np.ndarray,
    alpha: np.ndarray,
    background: np.ndarray,
    params: CompositeParams,
    seed: int,
    index: int,
) -> Composite:
    """Paste a matted foreground onto a background; all randomness from rng([seed, index]).

    fg_rgb: (H, W, 3) foreground colour, uint8 or float in [0, 1] (ideally the estimated
    foreground, not the raw photo); alpha: (H, W) float in [0, 1]; background: RGB uint8 of
    any size. The foreground travels premultiplied, so the linear interpolation of the joint
    transform cannot darken its edges. Raises CompositeError when too little of it is left.
    """
    if fg_rgb.ndim != 3 or fg_rgb.shape[2] != 3 or fg_rgb.shape[:2] != alpha.shape:
        raise ValueError(f"need (H, W, 3) fg and (H, W) alpha, got {fg_rgb.shape}, {alpha.shape}")
    a = np.clip(alpha.astype(np.float32), 0.0, 1.0)
    geom_rng, bg_rng, noise_rng, point_rng = np.random.default_rng([seed, index]).spawn(4)
    placement = draw_placement(
        geom_rng,
        (params.scale_min, params.scale_max),
        params.rotate_deg,
        params.translate_frac,
        params.hflip_prob,
    )
    premult, a_out = place_foreground(
        _foreground_255(fg_rgb) * a[..., None], a, params.size, placement
    )
    jitter = draw_background_jitter(
        bg_rng,
        params.bg_blur_prob,
        params.bg_blur_sigma_max,
        params.bg_noise_prob,
        params.bg_noise_std_max,
    )
    bg = prepare_background(background, params.size, jitter, noise_rng)
    # premult = alpha*F already, so this is alpha*F + (1-alpha)*B
    image = _quantise(premult + (1.0 - a_out)[..., None] * bg)
    return Composite(
        image=image,
        alpha=_quantise(a_out * 255.0),
        target=mask_target(a_out, params.mask_threshold),
        points=sample_points(a_out, point_rng, params),
        meta={"placement": asdict(placement), "background": asdict(jitter)},
    )

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

from dicepipe.composite.foreground import (
    cached_foreground,
    estimate_foreground,
    foreground_cache_key,
)
from dicepipe.composite.geometry import (
    draw_background_jitter,
    draw_placement,
    place_foreground,
    prepare_background,
)
from dicepipe.params.composite import CompositeParams
from dicepipe.sampling import point_count, prompt_points

__all__ = [
    "Composite",
    "CompositeError",
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
    """points.min..points.max prompt points where alpha > point_threshold (`prompt_points`)."""
    inside = np.flatnonzero(alpha.ravel() > params.point_threshold)
    if inside.size < params.min_mask_pixels:
        raise CompositeError(
            f"empty_composite: {inside.size} pixels with alpha > {params.point_threshold}"
            f" (need {params.min_mask_pixels})"
        )
    k = point_count(rng, params.points.min, params.points.max)
    return prompt_points(alpha > params.point_threshold, k, rng)


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

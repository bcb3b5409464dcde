"""Geometry of a composite: the joint foreground/alpha transform and the background crop.

All random choices are drawn from an explicit numpy Generator first; albumentations then runs
with those fixed values (and a seed), so the output depends only on the Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Placement:
    """The drawn foreground transform: fit to the canvas, then scale, rotate, shift, flip."""

    scale: float
    rotate_deg: float
    shift_x: float  # fraction of the canvas width
    shift_y: float  # fraction of the canvas height
    hflip: bool
    seed: int


@dataclass(frozen=True)
class BackgroundJitter:
    """The drawn background changes: crop offset (fraction of the slack), blur and noise."""

    crop_x: float
    crop_y: float
    blur_sigma: float  # 0 = no blur
    noise_std: float  # in 0-255 units; 0 = no noise


def draw_placement(
    rng: np.random.Generator,
    scale: tuple[float, float],
    rotate_deg: float,
    translate_frac: float,
    hflip_prob: float,
) -> Placement:
    """Draw one placement; always the same number of draws, whatever the ranges."""
    s = float(rng.uniform(scale[0], scale[1]))
    r = float(rng.uniform(-rotate_deg, rotate_deg))
    tx, ty = (float(v) for v in rng.uniform(-translate_frac, translate_frac, 2))
    flip = bool(rng.random() < hflip_prob)
    return Placement(s, r, tx, ty, flip, int(rng.integers(2**31 - 1)))


def place_foreground(
    premult: np.ndarray, alpha: np.ndarray, size: int, placement: Placement
) -> tuple[np.ndarray, np.ndarray]:
    """Transform a premultiplied foreground (H, W, 3) and its alpha (H, W) jointly.

    Both go through the same albumentations pipeline with linear interpolation (area when
    shrinking to fit), onto a (size, size) canvas: letterbox-fit, then the placement.
    Returns float32 (size, size, 3) and (size, size).
    """
    import albumentations as A
    import cv2

    pipeline = A.Compose(
        [
            A.LongestMaxSize(
                max_size=size,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_LINEAR,
                area_for_downscale="image_mask",
            ),
            A.PadIfNeeded(
                size, size, position="center", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0
            ),
            A.Affine(
                scale=(placement.scale, placement.scale),
                rotate=(placement.rotate_deg, placement.rotate_deg),
                translate_percent={"x": (placement.shift_x,) * 2, "y": (placement.shift_y,) * 2},
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_LINEAR,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=1.0,
            ),
            A.HorizontalFlip(p=1.0 if placement.hflip else 0.0),
        ],
        seed=placement.seed,
        strict=True,
    )
    out = pipeline(image=premult.astype(np.float32), mask=alpha.astype(np.float32))
    return out["image"], np.clip(out["mask"], 0.0, 1.0)


def draw_background_jitter(
    rng: np.random.Generator,
    blur_prob: float,
    blur_sigma_max: float,
    noise_prob: float,
    noise_std_max: float,
) -> BackgroundJitter:
    """Draw one background jitter; always the same number of draws, whatever the settings."""
    cx, cy, blur_u, blur_s, noise_u, noise_s = rng.random(6)
    sigma = float(blur_s * blur_sigma_max) if blur_u < blur_prob else 0.0
    std = float(noise_s * noise_std_max) if noise_u < noise_prob else 0.0
    return BackgroundJitter(float(cx), float(cy), sigma, std)


def _as_rgb(background: np.ndarray) -> np.ndarray:
    if background.ndim == 2:
        return np.repeat(background[..., None], 3, axis=2)
    if background.ndim == 3 and background.shape[2] in (3, 4):
        return background[..., :3]
    raise ValueError(f"background must be (H, W), (H, W, 3) or (H, W, 4), got {background.shape}")


def prepare_background(
    background: np.ndarray, size: int, jitter: BackgroundJitter, noise_rng: np.random.Generator
) -> np.ndarray:
    """Cover-resize, crop to (size, size), blur and add noise: float32 in 0-255 units."""
    import cv2

    bg = _as_rgb(background)
    h, w = bg.shape[:2]
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    bg = cv2.resize(np.ascontiguousarray(bg), (nw, nh), interpolation=interp)
    x0, y0 = round(jitter.crop_x * (nw - size)), round(jitter.crop_y * (nh - size))
    out = bg[y0 : y0 + size, x0 : x0 + size].astype(np.float32)
    if jitter.blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), jitter.blur_sigma)
    if jitter.noise_std > 0:
        out += noise_rng.standard_normal(out.shape, dtype=np.float32) * jitter.noise_std
    return out

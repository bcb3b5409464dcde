"""Depth metrics after least-squares scale-and-shift alignment (depth or disparity space)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Space = Literal["depth", "disparity", "none"]
METRIC_KEYS = ("absrel", "delta1", "delta2", "delta3", "rmse")
_MIN_DISPARITY = 1e-8


def valid_depth_mask(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Pixels where both depths are finite and positive (and `mask` is true)."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    valid = np.isfinite(pred) & np.isfinite(target) & (pred > 0) & (target > 0)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != target.shape:
            raise ValueError(f"mask {mask.shape} does not match target {target.shape}")
        valid &= mask
    return valid


def fit_scale_shift(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (s, t) minimising sum((s * x + t - y)^2) over 1-D arrays."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.size < 2 or x.size != y.size:
        raise ValueError(f"need >= 2 paired values to fit scale and shift, got {x.size}, {y.size}")
    if np.ptp(x) == 0:
        raise ValueError("prediction is constant over the valid pixels: scale is undetermined")
    design = np.stack([x, np.ones_like(x)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(scale), float(shift)


def align_depth(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None, space: Space = "depth"
) -> tuple[np.ndarray, float, float]:
    """Prediction aligned to the target by least squares on valid pixels, with (scale, shift).

    space "depth" fits s * pred + t ~ target; "disparity" fits s / pred + t ~ 1 / target and
    returns 1 / (that), with disparity floored at 1e-8; "none" returns pred unchanged (1, 0).
    """
    valid = valid_depth_mask(pred, target, mask)
    pred64 = np.asarray(pred, np.float64)
    if space == "none":
        return pred64, 1.0, 0.0
    if space == "depth":
        scale, shift = fit_scale_shift(pred64[valid], np.asarray(target, np.float64)[valid])
        return scale * pred64 + shift, scale, shift
    if space == "disparity":
        with np.errstate(divide="ignore", invalid="ignore"):
            disparity = 1.0 / pred64
            target_disparity = 1.0 / np.asarray(target, np.float64)[valid]
            scale, shift = fit_scale_shift(disparity[valid], target_disparity)
            return 1.0 / np.maximum(scale * disparity + shift, _MIN_DISPARITY), scale, shift
    raise ValueError(f"space must be 'depth', 'disparity' or 'none', got {space!r}")


def depth_metrics(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None, align: Space = "depth"
) -> dict[str, float]:
    """AbsRel, delta1/2/3 (fraction with max(p/g, g/p) < 1.25^k) and RMSE of one image,
    after alignment in `align` space, over valid pixels; also the fitted scale and shift."""
    aligned, scale, shift = align_depth(pred, target, mask, align)
    valid = valid_depth_mask(pred, target, mask)
    if not valid.any():
        raise ValueError("no valid pixels: target and prediction need finite positive depth")
    p, g = aligned[valid], np.asarray(target, np.float64)[valid]
    with np.errstate(divide="ignore", invalid="ignore"):
        # an aligned depth <= 0 (possible after a shift) is never within a threshold
        ratio = np.where(p > 0, np.maximum(p / g, g / p), np.inf)
    return {
        "absrel": float(np.mean(np.abs(p - g) / g)),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "scale": scale,
        "shift": shift,
    }


def mean_depth_metrics(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None] | None = None,
    align: Space = "depth",
) -> dict[str, float]:
    """Per-image depth metrics (METRIC_KEYS) averaged over images, plus `n_images`."""
    if len(preds) != len(targets) or not preds:
        raise ValueError(f"need as many (>0) predictions as targets: {len(preds)}, {len(targets)}")
    masks = [None] * len(preds) if masks is None else masks
    per_image = [
        depth_metrics(p, t, m, align) for p, t, m in zip(preds, targets, masks, strict=True)
    ]
    means = {key: float(np.mean([m[key] for m in per_image])) for key in METRIC_KEYS}
    return {**means, "n_images": len(per_image)}

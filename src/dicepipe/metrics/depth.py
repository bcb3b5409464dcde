"""Affine-invariant depth metrics: the Marigold / GenPercept evaluation protocol.

Source protocol: Marigold `script/depth/eval.py`, `src/util/alignment.py` and
`src/util/metric.py` (GenPercept evaluates with the same code):

- valid pixels come from the ground truth only: finite, strictly inside the benchmark's
  (min, max) depth range, and inside its mask or crop. A prediction that is non-finite or
  <= 0 on such a pixel is scored (as an error), never excluded;
- least-squares scale and shift, fitted on the valid pixels where the prediction is finite,
  either in depth space (s * pred + t ~ gt) or in disparity space (the prediction IS a
  disparity; s * pred + t ~ 1 / gt, fitted where pred > 0 as Marigold does, the result
  floored at disparity 1e-3 and inverted to depth);
- the aligned depth is clipped to the benchmark's [min, max] range and then to >= 1e-6
  (a non-finite aligned value becomes that floor, the worst depth the clip can produce);
- per image: AbsRel mean(|p - g| / g), SqRel mean((p - g)^2 / g), RMSE, RMSE-log
  sqrt(mean((log p - log g)^2)), delta_k = fraction with max(p / g, g / p) < 1.25^k;
- benchmark figures are the mean of the per-image figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Space = Literal["depth", "disparity", "none"]
DepthRange = tuple[float, float]
METRIC_KEYS = ("absrel", "sqrel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
MIN_DISPARITY = 1e-3  # Marigold eval.py: np.clip(disparity_pred, a_min=1e-3)
MIN_EVAL_DEPTH = 1e-6  # Marigold eval.py: "clip to d > 0 for evaluation"
UNBOUNDED: DepthRange = (0.0, float("inf"))


def gt_valid_mask(
    target: np.ndarray, mask: np.ndarray | None = None, depth_range: DepthRange | None = None
) -> np.ndarray:
    """Pixels scored: ground truth finite and strictly inside `depth_range` (default: > 0),
    and `mask` (the benchmark's crop or validity mask) true. The prediction plays no part."""
    target = np.asarray(target)
    low, high = UNBOUNDED if depth_range is None else depth_range
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(target) & (target > max(low, 0.0)) & (target < high)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != target.shape:
            raise ValueError(f"mask {mask.shape} does not match target {target.shape}")
        valid &= mask
    return valid


def fit_scale_shift(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (s, t) minimising sum((s * x + t - y)^2) over paired 1-D values.

    A constant x (one value, or a trivial constant prediction) leaves the scale undetermined;
    the least-squares optimum is then the mean of y, returned as (0, mean(y)).
    """
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.size == 0 or x.size != y.size:
        raise ValueError(f"need >= 1 paired values to fit scale and shift, got {x.size}, {y.size}")
    if np.ptp(x) == 0:
        return 0.0, float(y.mean())
    design = np.stack([x, np.ones_like(x)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(scale), float(shift)


def align_depth(
    pred: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray | None = None,
    space: Space = "depth",
    *,
    depth_range: DepthRange | None = None,
) -> tuple[np.ndarray, float, float]:
    """Prediction aligned to the ground truth as depth, with the fitted (scale, shift).

    space "depth": `pred` is depth, fit s * pred + t ~ target; "disparity": `pred` is a
    disparity, fit s * pred + t ~ 1 / target where pred > 0, floor at MIN_DISPARITY, invert;
    "none": `pred` unchanged, (1, 0). The fit uses the ground-truth-valid pixels (see
    `gt_valid_mask`) where the prediction is finite; with none, the prediction is returned
    unaligned (1, 0). Not yet clipped to a range: see `clip_depth`.
    """
    pred64, target64 = _paired(pred, target)
    if space == "none":
        return pred64, 1.0, 0.0
    if space not in ("depth", "disparity"):
        raise ValueError(f"space must be 'depth', 'disparity' or 'none', got {space!r}")
    fit = gt_valid_mask(target64, mask, depth_range) & np.isfinite(pred64)
    if space == "disparity":
        fit &= pred64 > 0
    if not fit.any():
        return pred64, 1.0, 0.0
    goal = target64[fit] if space == "depth" else 1.0 / target64[fit]
    scale, shift = fit_scale_shift(pred64[fit], goal)
    aligned = scale * pred64 + shift
    if space == "disparity":
        with np.errstate(invalid="ignore"):
            aligned = 1.0 / np.maximum(aligned, MIN_DISPARITY)  # NaN stays NaN
    return aligned, scale, shift


def clip_depth(depth: np.ndarray, depth_range: DepthRange | None = None) -> np.ndarray:
    """Depth clipped to `depth_range` and then to >= MIN_EVAL_DEPTH, as Marigold does before
    scoring; a non-finite value becomes the lower bound (a maximal error, never excluded)."""
    low, high = UNBOUNDED if depth_range is None else depth_range
    floor = max(low, MIN_EVAL_DEPTH)
    depth = np.asarray(depth, np.float64)
    return np.clip(np.where(np.isfinite(depth), depth, floor), floor, max(high, floor))


def depth_metrics(
    pred: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray | None = None,
    align: Space = "depth",
    *,
    depth_range: DepthRange | None = None,
) -> dict[str, float]:
    """METRIC_KEYS of one image after alignment (`align_depth`) and clipping (`clip_depth`),
    over the ground-truth-valid pixels; also the fitted scale and shift and `n_pixels`."""
    valid = gt_valid_mask(target, mask, depth_range)
    if not valid.any():
        raise ValueError("no valid pixels: the ground truth has no finite depth in range")
    aligned, scale, shift = align_depth(pred, target, mask, align, depth_range=depth_range)
    p = clip_depth(aligned[valid], depth_range)
    g = np.asarray(target, np.float64)[valid]
    ratio = np.maximum(p / g, g / p)
    return {
        "absrel": float(np.mean(np.abs(p - g) / g)),
        "sqrel": float(np.mean((p - g) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "scale": scale,
        "shift": shift,
        "n_pixels": int(valid.sum()),
    }


def mean_depth_metrics(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None] | None = None,
    align: Space = "depth",
    *,
    depth_range: DepthRange | None = None,
) -> dict[str, float]:
    """Per-image `depth_metrics` (METRIC_KEYS) averaged over images, plus `n_images`."""
    if len(preds) != len(targets) or not len(preds):
        raise ValueError(f"need as many (>0) predictions as targets: {len(preds)}, {len(targets)}")
    masks = [None] * len(preds) if masks is None else masks
    if len(masks) != len(preds):
        raise ValueError(f"got {len(masks)} masks for {len(preds)} predictions")
    per_image = [
        depth_metrics(p, t, m, align, depth_range=depth_range)
        for p, t, m in zip(preds, targets, masks, strict=True)
    ]
    means = {key: float(np.mean([m[key] for m in per_image])) for key in METRIC_KEYS}
    return {**means, "n_images": len(per_image)}


def _paired(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred64, target64 = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred64.shape != target64.shape:
        raise ValueError(f"prediction {pred64.shape} and target {target64.shape} differ in shape")
    return pred64, target64

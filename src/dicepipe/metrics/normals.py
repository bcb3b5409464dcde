"""Surface-normal metrics: angular error in degrees, pooled and per image.

Source protocols: the angular error, mean, median, RMSE and % under 5, 7.5, 11.25, 22.5 and
30 degrees are those of DSINE (`utils/utils.py`: `get_normal_error`, `get_normal_metrics`),
used by StableNormal and Lotus, which pool the errors of all pixels of a benchmark before
taking each statistic; Marigold (`src/util/metric.py`, `script/normals/eval.py`) takes the
same statistics per image and averages them over images. `normal_benchmark_metrics` returns
both, under `pooled_` and `per_image_` prefixes, because the two are not comparable.

Valid pixels come from the ground truth only (finite, non-zero normal, and the mask); in
`normal_benchmark_metrics` a prediction that is non-finite or zero there scores 90 degrees, as
a cosine similarity with a zero vector does in Marigold's torch code. `normal_metrics` (the
teacher audit's pooled figures) instead skips such pixels by default, since a pseudo-label's
NaN means "no label", and reports the coverage as `n_pixels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

UndefinedPrediction = Literal["error", "skip"]
THRESHOLDS_DEG = (5.0, 7.5, 11.25, 22.5, 30.0)
UNDEFINED_ERROR_DEG = 90.0


def angular_errors_deg(
    pred: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    undefined_pred: UndefinedPrediction = "skip",
) -> np.ndarray:
    """Angle in degrees between predicted and target normals (..., 3) at each pixel where the
    target is finite and non-zero (and `mask`), as a 1-D array; need not be unit length.
    A non-finite or zero prediction there scores UNDEFINED_ERROR_DEG ("error", the benchmark
    protocol) or is left out ("skip", for pseudo-labels whose NaN means 'no label')."""
    if undefined_pred not in ("error", "skip"):
        raise ValueError(f"undefined_pred must be 'error' or 'skip', got {undefined_pred!r}")
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape or pred.shape[-1:] != (3,):
        raise ValueError(f"need matching (..., 3) normals, got {pred.shape} and {target.shape}")
    target_norm = np.linalg.norm(target, axis=-1)
    valid = np.isfinite(target_norm) & (target_norm > 0)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != pred.shape[:-1]:
            raise ValueError(f"mask {mask.shape} does not match normals {pred.shape[:-1]}")
        valid &= mask
    p, t, t_norm = pred[valid], target[valid], target_norm[valid]
    p_norm = np.linalg.norm(p, axis=-1)
    defined = np.isfinite(p_norm) & (p_norm > 0)
    errors = np.full(p.shape[0], UNDEFINED_ERROR_DEG)
    cos = np.sum(p[defined] * t[defined], axis=-1) / (p_norm[defined] * t_norm[defined])
    errors[defined] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return errors if undefined_pred == "error" else errors[defined]


def angular_error_stats(errors: np.ndarray) -> dict[str, float]:
    """mean, median, rmse (degrees) and pct_5 ... pct_30 (% under each THRESHOLDS_DEG) of a
    1-D array of angular errors."""
    errors = np.asarray(errors, np.float64).ravel()
    if errors.size == 0:
        raise ValueError("no valid pixels: ground-truth normals must be finite and non-zero")
    result = {
        "mean": float(errors.mean()),
        "median": float(np.median(errors)),
        "rmse": float(np.sqrt(np.mean(errors**2))),
    }
    for threshold in THRESHOLDS_DEG:
        result[_pct_key(threshold)] = float(100.0 * np.mean(errors < threshold))
    return result


def normal_metrics(
    preds: Sequence[np.ndarray] | np.ndarray,
    targets: Sequence[np.ndarray] | np.ndarray,
    masks: Sequence[np.ndarray | None] | None = None,
    *,
    undefined_pred: UndefinedPrediction = "skip",
) -> dict[str, float]:
    """`angular_error_stats` POOLED over the valid pixels of all images (DSINE/StableNormal),
    plus `n_pixels`; one (H, W, 3) array is one image; undefined predictions as in
    `angular_errors_deg`. Benchmarks report `normal_benchmark_metrics`, whose keys say how
    they were averaged."""
    errors = _per_image_errors(preds, targets, masks, undefined_pred)
    return {**angular_error_stats(np.concatenate(errors)), "n_pixels": _n_pixels(errors)}


def normal_benchmark_metrics(
    preds: Sequence[np.ndarray] | np.ndarray,
    targets: Sequence[np.ndarray] | np.ndarray,
    masks: Sequence[np.ndarray | None] | None = None,
) -> dict[str, float]:
    """Both averages of `angular_error_stats`: `pooled_*` over all valid pixels (DSINE,
    StableNormal, Lotus) and `per_image_*` per image then over images (Marigold); plus
    `n_images` and `n_pixels`. Undefined predictions score 90 degrees; an image without valid
    ground truth is a ValueError."""
    errors = _per_image_errors(preds, targets, masks, "error")
    for index, image_errors in enumerate(errors):
        if image_errors.size == 0:
            raise ValueError(f"image {index} has no valid ground-truth normals")
    pooled = angular_error_stats(np.concatenate(errors))
    per_image = [angular_error_stats(e) for e in errors]
    result = {f"pooled_{key}": value for key, value in pooled.items()}
    for key in pooled:
        result[f"per_image_{key}"] = float(np.mean([stats[key] for stats in per_image]))
    return {**result, "n_images": len(errors), "n_pixels": _n_pixels(errors)}


def _per_image_errors(
    preds: Sequence[np.ndarray] | np.ndarray,
    targets: Sequence[np.ndarray] | np.ndarray,
    masks: Sequence[np.ndarray | None] | np.ndarray | None,
    undefined_pred: UndefinedPrediction,
) -> list[np.ndarray]:
    if isinstance(preds, np.ndarray) and preds.ndim == 3:
        preds, targets = [preds], [targets]  # type: ignore[list-item]
        masks = None if masks is None else [masks]  # type: ignore[list-item]
    if len(preds) != len(targets) or not len(preds):
        raise ValueError(f"need as many (>0) predictions as targets: {len(preds)}, {len(targets)}")
    masks = [None] * len(preds) if masks is None else masks
    if len(masks) != len(preds):
        raise ValueError(f"got {len(masks)} masks for {len(preds)} predictions")
    return [
        angular_errors_deg(p, t, m, undefined_pred=undefined_pred)
        for p, t, m in zip(preds, targets, masks, strict=True)
    ]


def _n_pixels(errors: list[np.ndarray]) -> int:
    return int(sum(e.size for e in errors))


def _pct_key(threshold: float) -> str:
    return f"pct_{threshold:g}".replace(".", "_")

"""Surface-normal metrics: angular error in degrees over valid pixels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

THRESHOLDS_DEG = (11.25, 22.5, 30.0)


def angular_errors_deg(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Angle in degrees between predicted and target normals (..., 3) at each valid pixel
    (both finite and non-zero, and `mask`), as a 1-D array; inputs need not be unit length."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape or pred.shape[-1:] != (3,):
        raise ValueError(f"need matching (..., 3) normals, got {pred.shape} and {target.shape}")
    pred_norm = np.linalg.norm(pred, axis=-1)
    target_norm = np.linalg.norm(target, axis=-1)
    valid = np.isfinite(pred_norm) & np.isfinite(target_norm) & (pred_norm > 0) & (target_norm > 0)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != pred.shape[:-1]:
            raise ValueError(f"mask {mask.shape} does not match normals {pred.shape[:-1]}")
        valid &= mask
    cos = np.sum(pred[valid] * target[valid], axis=-1) / (pred_norm[valid] * target_norm[valid])
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def normal_metrics(
    preds: Sequence[np.ndarray] | np.ndarray,
    targets: Sequence[np.ndarray] | np.ndarray,
    masks: Sequence[np.ndarray | None] | None = None,
) -> dict[str, float]:
    """Mean and median angular error (degrees) and % of pixels under 11.25, 22.5 and 30
    degrees, pooled over the valid pixels of all images (one (H, W, 3) array = one image)."""
    if isinstance(preds, np.ndarray) and preds.ndim == 3:
        preds, targets = [preds], [targets]
        masks = None if masks is None else [masks]  # type: ignore[list-item]
    if len(preds) != len(targets) or not len(preds):
        raise ValueError(f"need as many (>0) predictions as targets: {len(preds)}, {len(targets)}")
    masks = [None] * len(preds) if masks is None else masks
    errors = np.concatenate(
        [angular_errors_deg(p, t, m) for p, t, m in zip(preds, targets, masks, strict=True)]
    )
    if errors.size == 0:
        raise ValueError("no valid pixels: normals must be finite and non-zero somewhere")
    result = {"mean": float(errors.mean()), "median": float(np.median(errors))}
    for threshold in THRESHOLDS_DEG:
        result[f"pct_{threshold:g}".replace(".", "_")] = float(100.0 * np.mean(errors < threshold))
    return {**result, "n_pixels": int(errors.size)}

"""Point-prompted segmentation: IoU per (image, mask) and mIoU by number of prompt points.

Source protocol: SAM (Kirillov et al. 2023, sec. 7.1, "single point valid mask" evaluation)
as DICEPTION reports it (Fig. 3: mIoU with 1 point; Fig. 4: 1 point vs 5 points): each
prompted object's predicted mask is thresholded, its IoU |P & G| / |P | G| with the object's
ground-truth mask taken, and the IoUs averaged over all (image, mask) pairs of a dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def binarize(pred: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """A prediction (bool, {0, 1}, probabilities or logits with a matching threshold) as a
    boolean mask: `pred > threshold` (bool input is returned as is)."""
    pred = np.asarray(pred)
    if pred.dtype == bool:
        return pred
    if not np.issubdtype(pred.dtype, np.number):
        raise ValueError(f"prediction must be numeric or boolean, got {pred.dtype}")
    return pred > threshold


def mask_iou(pred: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of the thresholded prediction with a non-empty binary ground-truth mask (H, W)."""
    pred_mask = binarize(pred, threshold)
    target = np.asarray(target)
    if target.dtype != bool:
        if not np.isin(target, (0, 1)).all():
            raise ValueError("ground-truth mask must be binary (bool or 0/1)")
        target = target.astype(bool)
    if pred_mask.shape != target.shape or target.ndim != 2:
        raise ValueError(f"need matching (H, W) masks, got {pred_mask.shape} and {target.shape}")
    if not target.any():
        raise ValueError("ground-truth mask is empty: a prompted object needs pixels")
    return np.count_nonzero(pred_mask & target) / np.count_nonzero(pred_mask | target)


def point_prompt_miou(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    n_points: Sequence[int] | int,
    threshold: float = 0.5,
) -> dict[str, float]:
    """mIoU over (image, mask) pairs, overall ("miou", "count") and per number of prompt
    points ("miou_{k}pt", "count_{k}pt" for each k in `n_points`, e.g. 1 and 5)."""
    if len(preds) != len(targets) or not len(preds):
        raise ValueError(f"need as many (>0) predictions as targets: {len(preds)}, {len(targets)}")
    counts = [n_points] * len(preds) if isinstance(n_points, int) else list(n_points)
    if len(counts) != len(preds):
        raise ValueError(f"got {len(counts)} point counts for {len(preds)} predictions")
    if any(int(k) < 1 for k in counts):
        raise ValueError("every prompt needs at least one point")
    ious = np.array([mask_iou(p, t, threshold) for p, t in zip(preds, targets, strict=True)])
    counts_arr = np.asarray(counts, int)
    result: dict[str, float] = {"miou": float(ious.mean()), "count": int(ious.size)}
    for k in sorted(set(counts_arr.tolist())):
        chosen = ious[counts_arr == k]
        result[f"miou_{k}pt"] = float(chosen.mean())
        result[f"count_{k}pt"] = int(chosen.size)
    return result

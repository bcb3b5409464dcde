"""Entity and semantic segmentation: class-agnostic COCO mask AP and AR.

Source protocol: COCO instance-segmentation evaluation (pycocotools `COCOeval`, iouType
"segm"), class-agnostic as DICEPTION scores entity segmentation on COCO val 2017 (every
predicted and ground-truth mask one category; Table 3 reports AR small / medium / large at
100 detections). Masks are compressed to RLE with `pycocotools.mask.encode`; prediction areas
and boxes are computed as `COCO.loadRes` does; ground-truth areas default to the mask's pixel
count (COCO's own annotations use polygon areas: pass them as `gt_areas` to match exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dicepipe.metrics.coco import (
    CATEGORY_ID,
    check_binary_mask,
    check_flags,
    check_image_sizes,
    check_lengths,
    check_scores,
    coco_index,
    run_cocoeval,
)

SEGM_STATS = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR_1",
    "AR_10",
    "AR_100",
    "AR_small",
    "AR_medium",
    "AR_large",
)
MaskList = Sequence[np.ndarray] | np.ndarray  # one image's masks: (H, W) arrays or (N, H, W)


def mask_ap(
    pred_masks: Sequence[MaskList],
    pred_scores: Sequence[Sequence[float]],
    gt_masks: Sequence[MaskList],
    image_sizes: Sequence[tuple[int, int]],
    *,
    gt_iscrowd: Sequence[Sequence[bool]] | None = None,
    gt_areas: Sequence[Sequence[float]] | None = None,
) -> dict[str, float]:
    """Class-agnostic COCO segm AP / AR (SEGM_STATS) of per-image predicted binary masks with
    scores against ground-truth masks; images may have no predictions or no ground truth.
    No predictions at all gives AP 0 (where there is ground truth)."""
    sizes = check_image_sizes(image_sizes)
    check_lengths(
        len(sizes),
        pred_masks=pred_masks,
        pred_scores=pred_scores,
        gt_masks=gt_masks,
        gt_iscrowd=gt_iscrowd,
        gt_areas=gt_areas,
    )
    from pycocotools import mask as mask_utils

    gt_annotations: list[dict[str, Any]] = []
    dt_annotations: list[dict[str, Any]] = []
    for index, size in enumerate(sizes):
        image_id = index + 1
        gts = _checked(gt_masks[index], size, f"image {index} gt mask")
        dts = _checked(pred_masks[index], size, f"image {index} predicted mask")
        scores = check_scores(pred_scores[index], len(dts), f"image {index}")
        crowd_flags = None if gt_iscrowd is None else gt_iscrowd[index]
        crowd = check_flags(crowd_flags, len(gts), f"image {index}")
        areas = _areas(None if gt_areas is None else gt_areas[index], gts, index)
        for mask, flag, area in zip(gts, crowd, areas, strict=True):
            rle = mask_utils.encode(mask)
            gt_annotations.append(
                _annotation(image_id, rle, area, mask_utils.toBbox(rle), iscrowd=flag)
            )
        for mask, score in zip(dts, scores, strict=True):
            rle = mask_utils.encode(mask)
            area = float(mask_utils.area(rle))
            dt_annotations.append(
                _annotation(image_id, rle, area, mask_utils.toBbox(rle), score=score)
            )
    gt = coco_index(sizes, gt_annotations)
    dt = coco_index(sizes, dt_annotations)
    return run_cocoeval(gt, dt, "segm", SEGM_STATS)


def _checked(masks: MaskList, size: tuple[int, int], what: str) -> list[np.ndarray]:
    return [check_binary_mask(mask, size, f"{what} {j}") for j, mask in enumerate(masks)]


def _areas(given: Sequence[float] | None, gts: list[np.ndarray], index: int) -> list[float]:
    if given is None:
        return [float(np.count_nonzero(m)) for m in gts]
    areas = np.asarray(given, np.float64).ravel()
    if areas.size != len(gts) or not (np.isfinite(areas).all() and (areas >= 0).all()):
        raise ValueError(f"image {index}: need {len(gts)} finite non-negative gt areas")
    return areas.tolist()


def _annotation(
    image_id: int, rle: dict[str, Any], area: float, box: np.ndarray, **extra: float
) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "category_id": CATEGORY_ID,
        "segmentation": rle,
        "area": float(area),
        "bbox": [float(v) for v in box],
        "iscrowd": int(extra.pop("iscrowd", 0)),
        **extra,
    }

"""Human pose: COCO keypoint AP / AR from object keypoint similarity (OKS).

Source protocol: COCO keypoint evaluation (pycocotools `COCOeval`, iouType "keypoints";
cocodataset.org/#keypoints-eval), as Painter and DICEPTION (Table 4) report it on COCO val
2017: OKS = mean over labelled keypoints of exp(-d^2 / (2 s^2 k^2)), with s^2 the ground-truth
area and k = 2 * sigma per keypoint; AP over OKS 0.50:0.95, 20 detections per image, area
ranges medium and large. Prediction areas and boxes are those `COCO.loadRes` computes (the
extent of all predicted keypoints); a ground truth without labelled keypoints is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dicepipe.metrics.coco import (
    CATEGORY_ID,
    check_flags,
    check_lengths,
    check_scores,
    coco_index,
    run_cocoeval,
)

# COCO's per-keypoint sigmas x 10: nose, then left = right for eyes, ears, shoulders, elbows,
# wrists, hips, knees and ankles (the values pycocotools' COCOeval uses)
_PAIRED_SIGMAS_X10 = (0.25, 0.35, 0.79, 0.72, 0.62, 1.07, 0.87, 0.89)
COCO_KEYPOINT_SIGMAS = np.array([0.26, *np.repeat(_PAIRED_SIGMAS_X10, 2)]) / 10.0
KEYPOINT_STATS = (
    "AP",
    "AP50",
    "AP75",
    "AP_medium",
    "AP_large",
    "AR",
    "AR50",
    "AR75",
    "AR_medium",
    "AR_large",
)


def keypoint_ap(
    pred_keypoints: Sequence[np.ndarray],
    pred_scores: Sequence[Sequence[float]],
    gt_keypoints: Sequence[np.ndarray],
    gt_areas: Sequence[Sequence[float]],
    *,
    gt_boxes: Sequence[np.ndarray] | None = None,
    gt_iscrowd: Sequence[Sequence[bool]] | None = None,
    sigmas: np.ndarray | None = None,
) -> dict[str, float]:
    """COCO keypoint AP / AR (KEYPOINT_STATS) of per-image predicted people (N, K, 3) rows of
    (x, y, confidence) with scores, against ground-truth people (M, K, 3) rows of (x, y, v),
    v in {0, 1, 2}, with their segment areas (and optional (M, 4) xywh boxes, by default the
    extent of the labelled keypoints). K is 17 (COCO order) unless `sigmas` (K,) is given."""
    n_images = len(gt_keypoints)
    check_lengths(
        n_images,
        pred_keypoints=pred_keypoints,
        pred_scores=pred_scores,
        gt_areas=gt_areas,
        gt_boxes=gt_boxes,
        gt_iscrowd=gt_iscrowd,
    )
    sigmas = _check_sigmas(sigmas)
    k = sigmas.size
    gt_annotations: list[dict[str, Any]] = []
    dt_annotations: list[dict[str, Any]] = []
    for index in range(n_images):
        where = f"image {index}"
        gts = _people(gt_keypoints[index], k, f"{where} gt", ground_truth=True)
        dts = _people(pred_keypoints[index], k, f"{where} predicted")
        areas = _values(gt_areas[index], len(gts), f"{where} gt areas")
        boxes = _boxes(None if gt_boxes is None else gt_boxes[index], gts, where)
        crowd = check_flags(None if gt_iscrowd is None else gt_iscrowd[index], len(gts), where)
        scores = check_scores(pred_scores[index], len(dts), where)
        for person, area, box, flag in zip(gts, areas, boxes, crowd, strict=True):
            gt_annotations.append(
                {
                    **_person(index + 1, person),
                    "area": area,
                    "bbox": box,
                    "iscrowd": flag,
                    "num_keypoints": int(np.count_nonzero(person[:, 2] > 0)),
                }
            )
        for person, score in zip(dts, scores, strict=True):
            x0, y0 = person[:, :2].min(axis=0)
            x1, y1 = person[:, :2].max(axis=0)
            dt_annotations.append(
                {
                    **_person(index + 1, person),
                    "score": score,
                    "area": float((x1 - x0) * (y1 - y0)),
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                }
            )
    gt = coco_index(n_images, gt_annotations)
    dt = coco_index(n_images, dt_annotations)
    return run_cocoeval(gt, dt, "keypoints", KEYPOINT_STATS, kpt_oks_sigmas=sigmas)


def _check_sigmas(sigmas: np.ndarray | None) -> np.ndarray:
    if sigmas is None:
        return COCO_KEYPOINT_SIGMAS.copy()
    sigmas = np.asarray(sigmas, np.float64).ravel()
    if sigmas.size == 0 or not (np.isfinite(sigmas).all() and (sigmas > 0).all()):
        raise ValueError("sigmas must be a non-empty array of positive finite values")
    return sigmas


def _people(keypoints: np.ndarray, k: int, where: str, *, ground_truth: bool = False) -> np.ndarray:
    array = np.asarray(keypoints, np.float64)
    if array.size == 0:
        return np.zeros((0, k, 3))
    if array.ndim != 3 or array.shape[1:] != (k, 3):
        raise ValueError(f"{where} keypoints must be (people, {k}, 3), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{where} keypoints must be finite")
    if ground_truth and not np.isin(array[:, :, 2], (0, 1, 2)).all():
        raise ValueError(f"{where} keypoint visibility must be 0, 1 or 2")
    return array


def _values(values: Sequence[float], n: int, where: str) -> list[float]:
    array = np.asarray(values, np.float64).ravel()
    if array.size != n or not (np.isfinite(array).all() and (array >= 0).all()):
        raise ValueError(f"{where}: need {n} finite non-negative values, got {array.size}")
    return array.tolist()


def _boxes(given: np.ndarray | None, gts: np.ndarray, where: str) -> list[list[float]]:
    if given is not None:
        boxes = np.asarray(given, np.float64).reshape(-1, 4)
        if len(boxes) != len(gts) or not np.isfinite(boxes).all() or (boxes[:, 2:] < 0).any():
            raise ValueError(f"{where}: need {len(gts)} finite xywh gt boxes")
        return boxes.tolist()
    result = []
    for person in gts:
        labelled = person[person[:, 2] > 0, :2]
        if labelled.size == 0:
            result.append([0.0, 0.0, 0.0, 0.0])
            continue
        (x0, y0), (x1, y1) = labelled.min(axis=0), labelled.max(axis=0)
        result.append([float(x0), float(y0), float(x1 - x0), float(y1 - y0)])
    return result


def _person(image_id: int, person: np.ndarray) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "category_id": CATEGORY_ID,
        "keypoints": person.ravel().tolist(),
    }

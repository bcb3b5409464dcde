"""Pose target -> keypoints: DICEPTION Algorithm 1 (keypoint post-processing).

Red regions (within `rgb_tolerance` of (255, 0, 0)) -> connected components -> circular
parts -> centres -> type of the nearest ground-truth keypoint, kept when it lies closer than
`distance_threshold`. The paper's listing reads `if d_min < xi: continue`, which would drop
exactly the well-placed points; its text says the points close to a GT keypoint are the ones
kept, and so does this implementation.

Circular parts: a component whose area fills at least `circularity` of the circle through
its farthest pixel is one disc. Any other component holds round(area / disc area) discs (at
least 1), where the disc area is the median area of the circular components (or
pi * radius**2 when there is none), and is split by KMeans on its pixel coordinates.
Two discs whose centres are closer than about one radius cannot be told apart and decode as
one point at their midpoint. Clean targets decode within 0.5 px of the drawn (rounded)
keypoints, within 1.5 px under Gaussian noise of sigma 10.
"""

from __future__ import annotations

import numpy as np

from dicepipe.targets._checks import as_rgb_uint8
from dicepipe.targets.pose import KEYPOINT_COLOR, as_keypoints
from dicepipe.targets.thresholds import PoseDecodeParams


def _fill_ratio(xs: np.ndarray, ys: np.ndarray) -> float:
    r2 = ((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2).max()
    return float("inf") if r2 == 0 else xs.size / (np.pi * r2)


def _split_discs(xs: np.ndarray, ys: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    coords = np.stack([xs, ys], axis=1).astype(np.float64)
    with threadpool_limits(limits=1):
        model = KMeans(n_clusters=k, n_init=4, random_state=0).fit(coords)
    return model.cluster_centers_[np.lexsort(model.cluster_centers_.T[::-1])]


def red_components(rgb: np.ndarray, params: PoseDecodeParams) -> list[tuple[np.ndarray, ...]]:
    """(xs, ys) pixel coordinates of each red connected component of >= min_area pixels."""
    import cv2

    rgb = as_rgb_uint8(rgb)
    diff = rgb.astype(np.float32) - np.asarray(KEYPOINT_COLOR, dtype=np.float32)
    red = np.einsum("hwc,hwc->hw", diff, diff) <= np.float32(params.rgb_tolerance) ** 2
    n, labels = cv2.connectedComponents(red.astype(np.uint8), connectivity=8)
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    order = np.argsort(lab, kind="stable")
    bounds = np.searchsorted(lab[order], np.arange(1, n + 1))
    comps = []
    for i in range(n - 1):
        idx = order[bounds[i] : bounds[i + 1]]
        if idx.size >= params.min_area:
            comps.append((xs[idx].astype(np.float64), ys[idx].astype(np.float64)))
    return comps


def disc_centres(rgb: np.ndarray, params: PoseDecodeParams = PoseDecodeParams()) -> np.ndarray:
    """Centres (N, 2) float64 (x, y) of the red discs (Algorithm 1, lines 1-6)."""
    comps = red_components(rgb, params)
    circular = [_fill_ratio(xs, ys) >= params.circularity for xs, ys in comps]
    disc_areas = [xs.size for (xs, _), c in zip(comps, circular, strict=True) if c]
    disc_area = float(np.median(disc_areas)) if disc_areas else np.pi * params.radius**2
    centres = []
    for (xs, ys), is_disc in zip(comps, circular, strict=True):
        k = 1 if is_disc else int(np.clip(np.floor(xs.size / disc_area + 0.5), 1, params.max_discs))
        k = min(k, xs.size)
        centres.extend([[xs.mean(), ys.mean()]] if k == 1 else _split_discs(xs, ys, k))
    return np.array(centres, dtype=np.float64).reshape(-1, 2)


def _visible_gt(gt_keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kps = as_keypoints(gt_keypoints, "gt_keypoints")
    person, kind = np.nonzero((kps[..., 2] > 0) & np.isfinite(kps[..., :2]).all(axis=2))
    return kps[person, kind, :2], person, kind


def decode_keypoints(
    rgb: np.ndarray, gt_keypoints: np.ndarray, params: PoseDecodeParams = PoseDecodeParams()
) -> np.ndarray:
    """Decode a pose target (H, W, 3) uint8 into keypoints (N, 3) float32: (x, y, type).

    type is the COCO index (0-16) of the nearest GT keypoint with v > 0 among all people of
    `gt_keypoints` ((P, 17, 3) or (17, 3)); centres whose nearest GT keypoint is not closer
    than `distance_threshold` are dropped (Algorithm 1, lines 7-18, as the text describes).
    Rows follow the raster order of the red components.
    """
    centres = disc_centres(rgb, params)
    gt_xy, _, gt_kind = _visible_gt(gt_keypoints)
    if len(centres) == 0 or len(gt_xy) == 0:
        return np.zeros((0, 3), dtype=np.float32)
    dist = np.linalg.norm(centres[:, None, :] - gt_xy[None, :, :], axis=2)
    nearest = dist.argmin(axis=1)
    keep = dist[np.arange(len(centres)), nearest] < params.distance_threshold
    rows = np.column_stack([centres[keep], gt_kind[nearest[keep]]])
    return rows.astype(np.float32)


def keypoints_to_coco(pred: np.ndarray, gt_keypoints: np.ndarray) -> np.ndarray:
    """Group decoded keypoints (N, 3) into per-person COCO arrays (P, 17, 3) float32.

    Each prediction goes to the person whose GT keypoint of the same type is nearest; when
    several land on one (person, type), the closest wins. Found keypoints get v = 2, the
    others are (0, 0, 0).
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 3)
    gt = as_keypoints(gt_keypoints, "gt_keypoints")
    out = np.zeros(gt.shape, dtype=np.float32)
    best = np.full(gt.shape[:2], np.inf)
    visible = (gt[..., 2] > 0) & np.isfinite(gt[..., :2]).all(axis=2)
    for x, y, t in pred:
        kind = int(t)
        if not 0 <= kind < 17 or not visible[:, kind].any():
            continue
        d = np.where(visible[:, kind], np.hypot(gt[:, kind, 0] - x, gt[:, kind, 1] - y), np.inf)
        person = int(d.argmin())
        if d[person] < best[person, kind]:
            best[person, kind] = d[person]
            out[person, kind] = (x, y, 2.0)
    return out

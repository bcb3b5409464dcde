"""Pose target: COCO-17 skeletons as coloured limbs with red (255, 0, 0) keypoint discs."""

from __future__ import annotations

import numpy as np

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
    "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
    "left_ankle", "right_ankle",
)  # fmt: skip

#: COCO person skeleton as 0-based index pairs (the COCO json lists them 1-based).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

KEYPOINT_COLOR = (255, 0, 0)

#: One colour per limb: fully saturated hues from 40 to 320 degrees, so none is within 170
#: (Euclidean RGB) of the keypoint red, and the red regions of a target are only keypoints.
LIMB_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 170, 0), (255, 236, 0), (208, 255, 0), (142, 255, 0), (76, 255, 0), (9, 255, 0),
    (0, 255, 57), (0, 255, 123), (0, 255, 189), (0, 255, 255), (0, 189, 255), (0, 123, 255),
    (0, 57, 255), (9, 0, 255), (76, 0, 255), (142, 0, 255), (208, 0, 255), (255, 0, 236),
    (255, 0, 170),
)  # fmt: skip


def as_keypoints(keypoints: np.ndarray, name: str = "keypoints") -> np.ndarray:
    """Return COCO keypoints as float64 (P, 17, 3); a single (17, 3) person gets P = 1."""
    arr = np.asarray(keypoints)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (17, 3):
        raise ValueError(f"{name} must have shape (P, 17, 3) or (17, 3), got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _pixel(x: float, y: float) -> tuple[int, int]:
    return int(np.floor(x + 0.5)), int(np.floor(y + 0.5))


def encode_pose(
    keypoints: np.ndarray,
    height: int,
    width: int,
    *,
    radius: int = 4,
    thickness: int = 3,
) -> np.ndarray:
    """Draw COCO keypoints (P, 17, 3) of (x, y, v) pixels as a (height, width, 3) uint8 target.

    Black background; for every person, each COCO_SKELETON limb whose two keypoints have
    v > 0 is a LIMB_COLORS line of `thickness`; then every keypoint with v > 0 is a filled
    (255, 0, 0) disc of `radius` centred on the nearest pixel, drawn after all limbs of all
    people so no limb covers a keypoint. cv2.LINE_8 (no anti-aliasing) keeps the red exact.
    Keypoints with a non-finite coordinate are skipped.
    """
    import cv2

    kps = as_keypoints(keypoints)
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if radius < 1 or thickness < 1:
        raise ValueError(f"radius and thickness must be >= 1, got {radius}, {thickness}")
    canvas = np.zeros((int(height), int(width), 3), dtype=np.uint8)
    drawn = (kps[..., 2] > 0) & np.isfinite(kps[..., :2]).all(axis=2)
    for person, ok in zip(kps, drawn, strict=True):
        for (a, b), colour in zip(COCO_SKELETON, LIMB_COLORS, strict=True):
            if ok[a] and ok[b]:
                start, end = _pixel(*person[a, :2]), _pixel(*person[b, :2])
                cv2.line(canvas, start, end, colour, thickness, cv2.LINE_8)
    for person, ok in zip(kps, drawn, strict=True):
        for x, y in person[ok, :2]:
            cv2.circle(canvas, _pixel(x, y), int(radius), KEYPOINT_COLOR, -1, cv2.LINE_8)
    return canvas

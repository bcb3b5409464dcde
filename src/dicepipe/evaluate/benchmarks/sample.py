"""The sample every benchmark reader yields, and the error every reader raises."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dicepipe.errors import UserError


class BenchmarkReadError(UserError, ValueError):
    """A benchmark file, member or split line that cannot be used; the message names it."""


@dataclass(frozen=True)
class Instances:
    """Object masks of one image: masks (N, H, W) bool, COCO category ids (N,), iscrowd
    (N,) bool and annotated areas (N,) in pixels."""

    masks: np.ndarray
    category_ids: np.ndarray
    iscrowd: np.ndarray
    areas: np.ndarray

    def __post_init__(self) -> None:
        n = self.masks.shape[0]
        if self.masks.ndim != 3 or self.masks.dtype != bool:
            raise ValueError(f"masks must be (N, H, W) bool, got {self.masks.shape}")
        for name in ("category_ids", "iscrowd", "areas"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},)")


@dataclass(frozen=True)
class People:
    """Person keypoints of one image: keypoints (P, K, 3) rows of (x, y, v), segment areas
    (P,), xywh boxes (P, 4) and iscrowd (P,) bool, as COCOeval keypoints needs them."""

    keypoints: np.ndarray
    areas: np.ndarray
    boxes: np.ndarray
    iscrowd: np.ndarray

    def __post_init__(self) -> None:
        p = self.keypoints.shape[0]
        if self.keypoints.ndim != 3 or self.keypoints.shape[2] != 3:
            raise ValueError(f"keypoints must be (P, K, 3), got {self.keypoints.shape}")
        if self.areas.shape != (p,) or self.boxes.shape != (p, 4) or self.iscrowd.shape != (p,):
            raise ValueError(f"areas, boxes and iscrowd must describe {p} people")


@dataclass(frozen=True)
class BenchmarkSample:
    """One evaluation image. name: the RGB member's relative path (COCO: its file name);
    benchmark: the preset it is scored with (a `DEPTH_BENCHMARKS` key, or "coco");
    rgb: uint8 (H, W, 3); depth: float32 metres, NaN where nothing was measured;
    valid: bool (H, W), the pixels the benchmark scores (range, crop, dataset mask)."""

    name: str
    benchmark: str
    rgb: np.ndarray
    depth: np.ndarray | None = None
    valid: np.ndarray | None = None
    normals: np.ndarray | None = None
    instances: Instances | None = None
    people: People | None = None
    image_id: int | None = None
    focal_px: float | None = None

    def __post_init__(self) -> None:
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"{self.name}: rgb must be uint8 (H, W, 3), got {self.rgb.shape}")
        size = self.rgb.shape[:2]
        for name, shape, dtype in (
            ("depth", size, np.float32),
            ("valid", size, np.bool_),
            ("normals", (*size, 3), np.float32),
        ):
            value = getattr(self, name)
            if value is not None and (value.shape != shape or value.dtype != dtype):
                raise ValueError(f"{self.name}: {name} must be {dtype.__name__} {shape}")
        if self.instances is not None and self.instances.masks.shape[1:] != size:
            raise ValueError(f"{self.name}: instance masks do not match the image {size}")

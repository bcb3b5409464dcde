"""The teacher interface: anything that turns RGB images into raw geometric labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TeacherInput:
    """One image to label: its item key, where it comes from, and its decoded RGB pixels."""

    key: str
    source: str
    source_id: str
    image: np.ndarray  # (H, W, 3) uint8 RGB, EXIF orientation already applied
    focal_px: float | None = None  # known focal length in pixels (EXIF, calibration) if any


@dataclass(frozen=True)
class Label:
    """Raw labels of one image, in the image's own resolution.

    depth: (H, W) float32 metric z-depth (distance along the optical axis), NaN where unknown.
    normals: (H, W, 3) float32 unit vectors in the camera frame (X right, Y up, Z toward the
    viewer), NaN where unknown; None when the teacher predicts no normals.
    """

    key: str
    depth: np.ndarray
    focal_px: float
    normals: np.ndarray | None
    teacher: str  # identity: name plus weights/params digest


class Teacher(Protocol):
    """A pseudo-labeller. `identity` changes whenever its weights or parameters change."""

    identity: str

    def label(self, batch: Sequence[TeacherInput]) -> list[Label]:
        """Label a batch of images; returns one Label per input, in order."""
        ...


class TeacherBuildError(RuntimeError):
    """A model teacher that could not be built (bad device, plug-in or checkpoint): a
    configuration problem that stops the stage rather than quarantining every item."""

"""Score a teacher against exact labels (synthetic scenes): how good are its pseudo-labels?"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from dicepipe.metrics.depth import Space, mean_depth_metrics
from dicepipe.metrics.normals import normal_metrics
from dicepipe.sources.synthetic.render import render_scene
from dicepipe.teachers.base import Label, Teacher, TeacherInput


class ExactScene(Protocol):
    """What the audit needs from a scene (dicepipe.sources.synthetic.Scene satisfies it)."""

    rgb: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    focal_px: float


def audit_teacher(
    teacher: Teacher,
    scenes: Iterable[ExactScene],
    *,
    align: Space = "depth",
    give_focal: bool = False,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Label the scenes' RGB with `teacher` and compare with their exact labels.

    Returns depth metrics after `align` alignment ("depth"), without alignment
    ("depth_metric": the teacher's metric scale), relative focal-length error ("focal") and
    pooled normal metrics ("normals"); a part the teacher does not predict is None.
    give_focal: pass the exact focal length to the teacher (as EXIF would) instead of hiding it.
    """
    scenes = list(scenes)
    if not scenes:
        raise ValueError("audit needs at least one scene")
    labels = _label_all(teacher, scenes, give_focal, batch_size)
    return {
        "teacher": teacher.identity,
        "n_images": len(scenes),
        "depth": _depth_part(labels, scenes, align),
        "depth_metric": _depth_part(labels, scenes, "none"),
        "focal": _focal_part(labels, scenes),
        "normals": _normals_part(labels, scenes),
    }


def _label_all(
    teacher: Teacher, scenes: Sequence[ExactScene], give_focal: bool, batch_size: int
) -> list[Label]:
    inputs = [
        TeacherInput(
            f"audit-{i}", "audit", str(i), s.rgb, float(s.focal_px) if give_focal else None
        )
        for i, s in enumerate(scenes)
    ]
    labels: list[Label] = []
    for start in range(0, len(inputs), batch_size):
        labels.extend(teacher.label(inputs[start : start + batch_size]))
    if len(labels) != len(inputs):
        raise RuntimeError(f"teacher returned {len(labels)} labels for {len(inputs)} images")
    return labels


def _depth_part(
    labels: Sequence[Label], scenes: Sequence[ExactScene], align: Space
) -> dict[str, float] | None:
    if not any(np.isfinite(label.depth).any() for label in labels):
        return None
    return mean_depth_metrics(
        [label.depth for label in labels], [s.depth for s in scenes], align=align
    )


def _focal_part(labels: Sequence[Label], scenes: Sequence[ExactScene]) -> dict[str, float] | None:
    predicted = np.array([label.focal_px for label in labels], np.float64)
    if not np.isfinite(predicted).all():
        return None
    exact = np.array([s.focal_px for s in scenes], np.float64)
    relative = np.abs(predicted - exact) / exact
    return {
        "mean_relative_error": float(relative.mean()),
        "max_relative_error": float(relative.max()),
    }


def _normals_part(labels: Sequence[Label], scenes: Sequence[ExactScene]) -> dict[str, float] | None:
    if any(label.normals is None for label in labels):
        return None
    return normal_metrics([label.normals for label in labels], [s.normals for s in scenes])


def render_audit_scenes(seeds: Sequence[int], width: int, height: int) -> list[ExactScene]:
    """Synthetic scenes with exact depth, normals and focal length, one per seed."""

    return [render_scene(seed, width, height) for seed in seeds]

"""Normals teachers: `geometry` (normals of a depth teacher's surface) and, in marigold.py,
the diffusion teacher. Both return Labels in the dicepipe camera frame (X right, Y up, Z
toward the viewer)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from dicepipe.teachers.base import Label, Teacher, TeacherInput
from dicepipe.teachers.geometry import normals_from_depth
from dicepipe.weights import resolve_device


class GeometryNormalsTeacher:
    """Wraps a depth teacher: its depth and focal length, plus normals of that surface.

    max_relative_jump: a depth step larger than this fraction of the depth between neighbours
    is an occlusion edge (normals NaN there). step: tangent baseline in pixels (larger = smoother).
    """

    def __init__(
        self,
        depth_teacher: Teacher,
        *,
        max_relative_jump: float = 0.05,
        step: int = 1,
        device: str = "auto",
    ) -> None:
        if step < 1 or not max_relative_jump > 0:
            raise ValueError(f"need step >= 1, max_relative_jump > 0: {step}, {max_relative_jump}")
        self.depth_teacher = depth_teacher
        self.max_relative_jump = max_relative_jump
        self.step = step
        self.device = resolve_device(device)
        params = f"jump={max_relative_jump:g},step={step}"
        self.identity = f"{depth_teacher.identity}+normals_geometry:{params}"

    def label(self, batch: Sequence[TeacherInput]) -> list[Label]:
        """The depth teacher's labels with `normals` filled in, in input order."""
        labels = self.depth_teacher.label(batch)
        normals = depth_labels_to_normals(
            labels, self.max_relative_jump, self.step, device=str(self.device)
        )
        return [
            replace(label, normals=n, teacher=self.identity)
            for label, n in zip(labels, normals, strict=True)
        ]


def depth_labels_to_normals(
    labels: Sequence[Label], max_relative_jump: float, step: int, device: str = "cpu"
) -> list[np.ndarray]:
    """Normals (H, W, 3) float32 for each label's depth and focal length; same-sized maps are
    computed as one batch on `device`."""
    import torch

    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        groups[label.depth.shape].append(index)
    out: list[np.ndarray | None] = [None] * len(labels)
    for indices in groups.values():
        depth = torch.from_numpy(np.stack([labels[i].depth for i in indices])).to(device)
        focal = torch.tensor([labels[i].focal_px for i in indices], device=device)
        with torch.inference_mode():
            normals = normals_from_depth(depth, focal, max_relative_jump, step)
        for i, n in zip(indices, normals.cpu().numpy(), strict=True):
            out[i] = n.astype(np.float32)
    return out  # type: ignore[return-value]

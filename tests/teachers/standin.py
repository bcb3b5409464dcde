"""Stand-in normals plug-ins (`label.normals: module:factory`) for the tests.

`build` is shaped like a StableNormal wrapper would be: its "model" is one unit direction read
from `<label.normals_weights>/model.safetensors`, given to every pixel. `counting_geometry` is
the built-in geometry teacher (same identity, same labels) that, when `$STANDIN_RECORD_DIR` is
set, appends a line to `loads-<pid>` there per build (a teacher load) and to `batches-<pid>`
per labelled batch: a test sees which processes loaded the teacher and which labelled with
it, Dask worker processes included.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dicepipe.params.label import LabelParams
from dicepipe.teachers import model_device
from dicepipe.teachers.base import Label, Teacher, TeacherInput
from dicepipe.teachers.normals import GeometryNormalsTeacher
from dicepipe.teachers.plugin import PredictedNormalsTeacher
from dicepipe.weights import resolve_weights, weights_digest

RECORD_ENV = "STANDIN_RECORD_DIR"
SPEC = "tests.teachers.standin:build"
COUNTING = "tests.teachers.standin:counting_geometry"


class StandInNormals(PredictedNormalsTeacher):
    """Constant normals from a one-tensor checkpoint; identity: code version + weights digest."""

    def __init__(self, depth_teacher: Teacher, weights: str) -> None:
        from safetensors.numpy import load_file

        folder = resolve_weights(weights, param="label.normals_weights")
        direction = load_file(str(folder / "model.safetensors"))["direction"].astype(np.float32)
        self.direction = direction / np.linalg.norm(direction)
        super().__init__(depth_teacher, f"normals_standin:v1:{weights_digest(folder)}")

    def predict(self, batch: Sequence[TeacherInput]) -> list[np.ndarray]:
        """The checkpoint's direction at every pixel of every input."""
        return [np.broadcast_to(self.direction, (*i.image.shape[:2], 3)).copy() for i in batch]


def build(params: LabelParams, depth_teacher: Teacher) -> StandInNormals:
    """The factory `label.normals` names."""
    return StandInNormals(depth_teacher, params.normals_weights)


class CountingGeometry(GeometryNormalsTeacher):
    """`normals: geometry` exactly, recording every labelled batch."""

    def label(self, batch: Sequence[TeacherInput]) -> list[Label]:
        """The geometry teacher's labels."""
        _record("batches")
        return super().label(batch)


def counting_geometry(params: LabelParams, depth_teacher: Teacher) -> CountingGeometry:
    """The geometry normals teacher of `params`, recording its load."""
    _record("loads")
    geometry = params.geometry
    return CountingGeometry(
        depth_teacher,
        max_relative_jump=geometry.max_relative_jump,
        step=geometry.step,
        device=model_device(params),
    )


def save_weights(folder: Path, direction: tuple[float, float, float]) -> Path:
    """Write a stand-in checkpoint holding `direction`."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({"direction": np.asarray(direction, np.float32)}, str(folder / "model.safetensors"))
    return folder


def _record(what: str) -> None:
    folder = os.environ.get(RECORD_ENV)
    if folder:
        with open(Path(folder) / f"{what}-{os.getpid()}", "a") as handle:
            handle.write("1\n")


def recorded(folder: Path, what: str) -> dict[int, int]:
    """Lines recorded per process id: {pid: count}."""
    return {
        int(path.name.rsplit("-", 1)[1]): len(path.read_text().splitlines())
        for path in folder.glob(f"{what}-*")
    }

"""Normals teachers of your own (StableNormal, DSINE, ...) behind the teacher interface.

Select one with `label.normals: module:factory` (and its checkpoint with
`label.normals_weights`). The factory is called once per labelling process, when the model
teacher is built, as `factory(params, depth_teacher)` with the validated `LabelParams` and the
Depth Pro teacher, and returns a `Teacher` whose labels carry depth and focal length (from
`depth_teacher`) and normals. Subclassing `PredictedNormalsTeacher` gives that for one method,
`predict`. The returned teacher's `identity` must contain the depth teacher's identity and
more: it keys the per-item label cache and enters every label unit's fingerprint, so it must
change whenever the plug-in's output would (its weights digest, dtype, device type, settings
and code version).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from dicepipe.params.label import BUILTIN_NORMALS, LabelParams
from dicepipe.teachers.base import Label, Teacher, TeacherInput

NormalsFactory = Callable[[LabelParams, Teacher], Teacher]


class PredictedNormalsTeacher:
    """Base class of a normals model: depth and focal length from `depth_teacher`, normals
    from `predict`. Subclasses load their model in `__init__`, call
    `super().__init__(depth_teacher, own_identity)` and implement `predict`.

    own_identity: the plug-in's own part of the identity, e.g.
    `normals_stablenormal:v1:<weights digest>:bf16:cuda:res=768`.
    """

    def __init__(self, depth_teacher: Teacher, own_identity: str) -> None:
        if not own_identity:
            raise ValueError("a normals teacher needs its own identity (name, weights, params)")
        self.depth_teacher = depth_teacher
        self.identity = f"{depth_teacher.identity}+{own_identity}"

    def predict(self, batch: Sequence[TeacherInput]) -> list[np.ndarray]:
        """Unit normals (H, W, 3) per input, in the dicepipe camera frame (X right, Y up, Z
        toward the viewer), NaN where unknown."""
        raise NotImplementedError

    def label(self, batch: Sequence[TeacherInput]) -> list[Label]:
        """The depth teacher's labels with this model's normals, in input order."""
        labels = self.depth_teacher.label(batch)
        normals = self.predict(batch)
        if len(normals) != len(batch):
            raise RuntimeError(f"predict returned {len(normals)} maps for {len(batch)} inputs")
        return [
            replace(label, normals=_checked(n, item), teacher=self.identity)
            for item, label, n in zip(batch, labels, normals, strict=True)
        ]


def _checked(normals: np.ndarray, item: TeacherInput) -> np.ndarray:
    expected = (*item.image.shape[:2], 3)
    array = np.asarray(normals, np.float32)
    if array.shape != expected:
        raise ValueError(f"normals of {item.key} are {array.shape}, expected {expected}")
    return array


def is_plugin(normals: str) -> bool:
    """True when `label.normals` names a plug-in factory rather than a built-in teacher."""
    return normals not in BUILTIN_NORMALS


def resolve_factory(spec: str) -> NormalsFactory:
    """Import the factory `module:name` that `label.normals` names; errors say which."""
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure is a configuration error
        raise ImportError(
            f"label.normals {spec!r}: cannot import {module_name}: {type(error).__name__}: "
            f"{error} (is it installed, or on PYTHONPATH of every worker?)"
        ) from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ImportError(f"label.normals {spec!r}: {module_name} has no callable {name!r}")
    return factory


def build_plugin_normals(params: LabelParams, depth_teacher: Teacher) -> Teacher:
    """The plug-in normals teacher of `params.normals`, checked: it labels, and its identity
    extends the depth teacher's (so caches and fingerprints follow both)."""
    teacher: Any = resolve_factory(params.normals)(params, depth_teacher)
    identity = getattr(teacher, "identity", None)
    if not callable(getattr(teacher, "label", None)) or not isinstance(identity, str):
        raise TypeError(f"label.normals {params.normals!r} did not return a Teacher")
    if depth_teacher.identity not in identity or identity == depth_teacher.identity:
        raise ValueError(
            f"label.normals {params.normals!r}: the identity {identity!r} must contain the "
            f"depth teacher's ({depth_teacher.identity!r}) and the plug-in's own part"
        )
    return teacher

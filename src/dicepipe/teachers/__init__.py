"""Pseudo-labellers behind one interface (`dicepipe.teachers.base.Teacher`); they are built
from `label` params by `dicepipe.teachers.factory`."""

from __future__ import annotations

from dicepipe.teachers.base import Label, Teacher, TeacherInput
from dicepipe.teachers.factory import (
    build_model_teacher,
    built_teacher,
    check_teacher,
    configure_torch,
    make_teacher,
    model_device,
    shared_teacher,
)

__all__ = [
    "Label",
    "Teacher",
    "TeacherInput",
    "build_model_teacher",
    "built_teacher",
    "check_teacher",
    "configure_torch",
    "make_teacher",
    "model_device",
    "shared_teacher",
]

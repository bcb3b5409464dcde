"""Pseudo-labellers behind one interface (`dicepipe.teachers.base.Teacher`)."""

from __future__ import annotations

from dicepipe.params import LabelParams
from dicepipe.teachers.base import Label, Teacher, TeacherInput

__all__ = ["Label", "Teacher", "TeacherInput", "make_teacher"]


def make_teacher(params: LabelParams) -> Teacher:
    """Build the teacher that `params.teacher` names."""
    if params.teacher == "ground_truth":
        from dicepipe.teachers.ground_truth import GroundTruthTeacher

        return GroundTruthTeacher(params.ground_truth_dir)
    raise ValueError(f"label.teacher: unknown teacher {params.teacher!r}")

"""`auto` teacher: exact labels where the source ships them, a model teacher elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dicepipe.teachers.base import Label, Teacher, TeacherBuildError, TeacherInput
from dicepipe.teachers.ground_truth import GroundTruthTeacher
from dicepipe.weights import MissingWeightsError


class AutoTeacher:
    """Routes each item: exact labels when a label file exists, else the fallback teacher.

    The fallback (Depth Pro) is built only when an item needs it, so a corpus with exact labels
    for every item never loads a model; when it is needed and its weights are missing, its
    MissingWeightsError stops the stage with the message saying where to put them.
    """

    def __init__(
        self, exact: GroundTruthTeacher, build_fallback: Callable[[], Teacher], fallback: str
    ) -> None:
        self.exact = exact
        self._build_fallback = build_fallback
        self._fallback: Teacher | None = None
        self.identity = f"auto[{exact.identity}|{fallback}]"

    def label(self, batch: Sequence[TeacherInput]) -> list[Label]:
        """Labels in input order, each from the teacher that applies to its item."""
        exact = [item for item in batch if self.exact.has_label(item)]
        rest = [item for item in batch if not self.exact.has_label(item)]
        labels = {label.key: label for label in self.exact.label(exact)}
        if rest:
            labels.update((label.key, label) for label in self._model().label(rest))
        return [labels[item.key] for item in batch]

    def _model(self) -> Teacher:
        """The fallback teacher, built on first use; a failure to build it stops the stage."""
        if self._fallback is None:
            try:
                self._fallback = self._build_fallback()
            except MissingWeightsError:
                raise
            except Exception as error:
                message = f"the model teacher could not be built: {type(error).__name__}: {error}"
                raise TeacherBuildError(message) from error
        return self._fallback

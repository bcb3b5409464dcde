"""The task scorers by task name: which `Scorer` scores which task."""

from __future__ import annotations

from dicepipe.evaluate.baselines import Baselines
from dicepipe.evaluate.dense import DepthScorer, NormalScorer
from dicepipe.evaluate.objects import EntityScorer, PointScorer, PoseScorer
from dicepipe.evaluate.scoring import Scorer
from dicepipe.params.evaluate import EvaluateParams

SCORERS: dict[str, type[Scorer]] = {
    kind.task: kind for kind in (DepthScorer, NormalScorer, PointScorer, EntityScorer, PoseScorer)
}


def make_scorers(
    params: EvaluateParams, baselines: Baselines, benchmark: str, tasks: list[str]
) -> list[Scorer]:
    """One scorer per task, in the order of `tasks`."""
    return [SCORERS[task](params, baselines, benchmark) for task in tasks]

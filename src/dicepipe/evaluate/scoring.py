"""What every task scorer shares: the model queries it asks for, per-sample rows, the registry.

A scorer turns one benchmark's samples into model queries (one per image, or one per
prompted object and number of points), scores each decoded prediction and its baseline by
the same code, keeps what the benchmark-level figures need, and sums up as
`{"model": {...}, "baseline": {...}}`. The task scorers live in `dense` and `objects`; the
registry that picks them by task, in `scorers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dicepipe.evaluate.baselines import Baselines
from dicepipe.evaluate.benchmarks.sample import BenchmarkSample
from dicepipe.params.evaluate import EvaluateParams

SYSTEMS = ("model", "baseline")
# The figures plotted and tracked over checkpoints: (metric, higher is better).
HEADLINE: dict[str, tuple[tuple[str, bool], ...]] = {
    "depth": (("absrel", False), ("delta1", True)),
    "normal": (("pooled_mean", False), ("pooled_pct_11_25", True)),
    "point_segmentation": (("miou_1pt", True), ("miou_5pt", True)),
    "entity_segmentation": (("AP", True), ("AR_100", True)),
    "pose": (("AP", True),),
}


@dataclass(frozen=True)
class Query:
    """One model call: image `index` of the current chunk, a task, its prompt points; `obj`
    and `k` name the prompted object and the number of points (point segmentation)."""

    index: int
    task: str
    points: np.ndarray | None = None
    obj: int = -1
    k: int = 0

    @property
    def item(self) -> str:
        """The query's name inside its image, for the per-sample table."""
        return f"mask{self.obj}/{self.k}pt" if self.obj >= 0 else ""


class Scorer:
    """Base of the task scorers (see the module docstring)."""

    task = ""

    def __init__(self, params: EvaluateParams, baselines: Baselines, benchmark: str) -> None:
        self.params = params
        self.baselines = baselines
        self.benchmark = benchmark
        self.empty: list[bool] = []  # per model prediction: it decoded to nothing

    def empty_fraction(self) -> float | None:
        """The share of the model's predictions that decoded to nothing (None: none scored)."""
        return float(np.mean(self.empty)) if self.empty else None

    def applies(self, sample: BenchmarkSample) -> bool:
        """Whether the sample has the labels this task is scored on."""
        raise NotImplementedError

    def queries(self, index: int, sample: BenchmarkSample) -> list[Query]:
        """The model calls this sample needs (one by default)."""
        return [Query(index, self.task)]

    def add(self, sample: BenchmarkSample, query: Query, prediction: np.ndarray) -> list[dict]:
        """Score a prediction (H, W, 3) uint8 and the baseline; the per-sample rows."""
        raise NotImplementedError

    def target(self, sample: BenchmarkSample, query: Query) -> np.ndarray:
        """The ground truth drawn as this task's RGB target, for previews."""
        raise NotImplementedError

    def summary(self) -> dict[str, dict[str, Any]]:
        """Benchmark-level figures of the model and of the baseline."""
        raise NotImplementedError

    def rows(
        self, sample: BenchmarkSample, query: Query, model: dict, baseline: dict
    ) -> list[dict]:
        """One per-sample row per system."""
        head = {"benchmark": self.benchmark, "task": self.task, "sample": sample.name}
        return [
            {**head, "item": query.item, "system": system, **figures}
            for system, figures in zip(SYSTEMS, (model, baseline), strict=True)
        ]


def is_flat(prediction: np.ndarray, levels: int = 2) -> bool:
    """Whether an RGB prediction is one colour (every channel within `levels` of 255): a dense
    map that says nothing about its image."""
    flat = prediction.reshape(-1, prediction.shape[-1])
    return bool((flat.max(axis=0).astype(int) - flat.min(axis=0)).max() <= levels)


def mean_of(rows: list[dict[str, float]], keys: tuple[str, ...]) -> dict[str, float]:
    """The mean of each key over per-image figures, with `n_images`."""
    result = {key: float(np.mean([row[key] for row in rows])) for key in keys}
    return {**result, "n_images": len(rows)}

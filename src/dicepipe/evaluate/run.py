"""One evaluation run: a model folder on every configured benchmark and task, beside the
trivial baselines, streamed in chunks of images (only the benchmark-level accumulators stay
in memory).

`evaluate_model` returns an `Evaluation` (figures, per-sample rows, preview rows); the report
module writes it out. Benchmarks are read by the archive readers (`evaluate.benchmarks`) or
rendered (`evaluate.heldout`); a task runs on a benchmark when its samples carry the labels
and the checkpoint knows the task, and is reported as skipped otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from dicepipe.evaluate.baselines import Baselines, build_baselines
from dicepipe.evaluate.benchmarks.sample import BenchmarkSample
from dicepipe.evaluate.predict import load_model, predict_queries
from dicepipe.evaluate.scorers import make_scorers
from dicepipe.evaluate.scoring import Query, Scorer
from dicepipe.params.evaluate import BenchmarkParams, EvaluateParams

CHUNK_IMAGES = 16  # images read, predicted and scored together


@dataclass
class Evaluation:
    """What a run produced: {benchmark: {task: {model, baseline}}}, per-sample rows, preview
    rows per task (input | target | prediction) and what was skipped and why."""

    metrics: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    previews: dict[str, list[list[np.ndarray]]] = field(default_factory=dict)
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def read_benchmark(bench: BenchmarkParams, params: EvaluateParams) -> Iterator[BenchmarkSample]:
    """The samples of one configured benchmark, lazily."""
    from dicepipe.evaluate import benchmarks as readers
    from dicepipe.evaluate.heldout import read_heldout

    if bench.name == "heldout":
        return read_heldout(params.heldout, bench.limit)
    if bench.name == "coco":
        return readers.read_coco(
            bench.path,
            bench.instances or None,
            bench.keypoints or None,
            prefix=bench.prefix,
            limit=bench.limit,
        )
    if bench.name in ("kitti", "kitti_garg"):
        return readers.read_kitti(bench.path, bench.split, limit=bench.limit, crop=bench.name)
    read = {
        "nyuv2": readers.read_nyuv2,
        "scannet": readers.read_scannet,
        "diode": readers.read_diode,
        "eth3d": readers.read_eth3d,
    }[bench.name]
    return read(bench.path, bench.split, limit=bench.limit)


# predictor(chunk of samples, [(scorer, query)], progress bar) -> RGB prediction per query
Predictor = Callable[[list[BenchmarkSample], list[tuple[Scorer, Query]], Any], list[np.ndarray]]


def evaluate_model(
    folder: str | Path,
    params: EvaluateParams,
    baselines: Baselines | None = None,
    progress: bool = True,
) -> Evaluation:
    """Score the model folder on every benchmark of `params` (see the module docstring)."""
    from dicepipe.model.folder import sampling_mismatches  # the model package imports torch

    if params.threads is not None:
        import torch

        torch.set_num_threads(params.threads)
    loaded = load_model(folder, params.device, params.resolution)

    def predictor(
        chunk: list[BenchmarkSample], pairs: list[tuple[Scorer, Query]], bar: Any
    ) -> list[np.ndarray]:
        images = [sample.rgb for sample in chunk]
        queries = [query for _, query in pairs]
        return predict_queries(loaded, images, queries, params.sampling, params.batch_size, bar)

    info = {
        "model": str(loaded.folder),
        "resolution": loaded.resolution,
        "device": str(loaded.model.device),
        "sampling": vars(params.sampling),
        # evaluate.sampling against how the model was trained: written with the report
        "sampling_warnings": sampling_mismatches(
            loaded.checked.info, params.sampling.one_step, params.sampling.guidance
        ),
    }
    return evaluate_with(predictor, loaded.tasks, params, baselines, info, progress)


def evaluate_oracle(
    params: EvaluateParams, baselines: Baselines | None = None, progress: bool = False
) -> Evaluation:
    """Score the ground truth drawn as each task's target: what a perfect model would get
    through the decoders (depth quantisation, Algorithms 1 and 2), a sanity check."""

    def predictor(
        chunk: list[BenchmarkSample], pairs: list[tuple[Scorer, Query]], bar: Any
    ) -> list[np.ndarray]:
        return [scorer.target(chunk[query.index], query) for scorer, query in pairs]

    info = {"model": "oracle: the ground truth drawn as targets"}
    return evaluate_with(predictor, list(params.tasks), params, baselines, info, progress)


def evaluate_with(
    predictor: Predictor,
    known_tasks: list[str],
    params: EvaluateParams,
    baselines: Baselines | None = None,
    info: dict[str, Any] | None = None,
    progress: bool = True,
) -> Evaluation:
    """Score `predictor` on every benchmark of `params` for the tasks it knows."""
    from dicepipe.evaluate.heldout import check_heldout

    if any(b.name == "heldout" for b in params.benchmarks):
        check_heldout(params.heldout, params.baseline.shards)  # the shards trained on
    baselines = baselines or build_baselines(params.baseline, params.heldout)
    result = Evaluation(info={**(info or {}), "baselines": baselines.describe()})
    for bench in params.benchmarks:
        _evaluate_benchmark(predictor, known_tasks, bench, params, baselines, result, progress)
    return result


def _evaluate_benchmark(
    predictor: Predictor,
    known_tasks: list[str],
    bench: BenchmarkParams,
    params: EvaluateParams,
    baselines: Baselines,
    result: Evaluation,
    progress: bool,
) -> None:
    from tqdm import tqdm

    tasks = [t for t in params.tasks if t in known_tasks]
    skipped = {t: "the checkpoint does not know this task" for t in params.tasks if t not in tasks}
    scorers = make_scorers(params, baselines, bench.name, tasks)
    used: dict[str, int] = dict.fromkeys(tasks, 0)
    samples = read_benchmark(bench, params)
    with tqdm(desc=f"evaluate {bench.name}", unit="query", disable=not progress) as bar:
        while chunk := list(islice(samples, CHUNK_IMAGES)):
            pairs = [
                (scorer, query)
                for index, sample in enumerate(chunk)
                for scorer in scorers
                if scorer.applies(sample)
                for query in scorer.queries(index, sample)
            ]
            bar.total = (bar.total or 0) + len(pairs)
            predictions = predictor(chunk, pairs, bar)
            for (scorer, query), prediction in zip(pairs, predictions, strict=True):
                sample = chunk[query.index]
                result.rows += scorer.add(sample, query, prediction)
                used[scorer.task] += 1
                _preview(result, scorer, sample, query, prediction, params.previews)
    figures = {}
    for scorer in scorers:
        if used[scorer.task]:
            figures[scorer.task] = scorer.summary()
            figures[scorer.task]["model"]["empty_predictions"] = scorer.empty_fraction()
        else:
            skipped[scorer.task] = "no sample of this benchmark has its labels"
    result.metrics[bench.name] = figures
    if skipped:
        result.skipped[bench.name] = skipped


def _preview(
    result: Evaluation,
    scorer: Scorer,
    sample: BenchmarkSample,
    query: Query,
    prediction: np.ndarray,
    limit: int,
) -> None:
    """Keep the first `limit` (input | target | prediction) rows of each task (with the most
    prompt points; never an empty target, such as a pose target without people)."""
    rows = result.previews.setdefault(scorer.task, [])
    if len(rows) >= limit or (query.k and query.k != max(scorer.params.point_counts)):
        return
    target = scorer.target(sample, query)
    if not target.any():
        return
    shown = sample.rgb
    if query.points is not None:
        from dicepipe.shards.preview import draw_points

        shown = draw_points(sample.rgb, query.points.tolist())
    rows.append([shown, target, prediction])

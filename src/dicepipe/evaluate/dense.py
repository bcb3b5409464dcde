"""Depth and surface-normal scorers: per-pixel tasks on the published protocols.

Depth: the RGB prediction decodes (`decode_depth`, no meta) to a relative depth exact up to
an affine map in the space the target was encoded in, so it is aligned there: least-squares
scale and shift in disparity (default) or depth, on the ground-truth-valid pixels, clipped to
the benchmark's range, then AbsRel, delta1-3, RMSE per image, averaged over images
(`metrics.depth`, with the benchmark's crop and range from `metrics.depth_benchmarks`).
Normals: decoded unit vectors vs the ground truth, angular error in degrees, pooled over
pixels and per image (`metrics.normals`); an undefined prediction scores 90 degrees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dicepipe.evaluate.benchmarks.sample import BenchmarkSample
from dicepipe.evaluate.scoring import Query, Scorer, is_flat, mean_of
from dicepipe.metrics.depth import METRIC_KEYS, Space, depth_metrics
from dicepipe.metrics.depth_benchmarks import DEPTH_BENCHMARKS, DepthBenchmark
from dicepipe.metrics.normals import angular_error_stats, angular_errors_deg

# Held-out synthetic rooms: any positive depth is exact.
HELDOUT_DEPTH = DepthBenchmark("heldout", 1e-3, 1e3)


def depth_preset(benchmark: str) -> DepthBenchmark:
    """The range and crop a sample's benchmark is scored with."""
    return DEPTH_BENCHMARKS.get(benchmark, HELDOUT_DEPTH)


def scored_depth(depth: np.ndarray, space: str) -> tuple[np.ndarray, Space]:
    """(prediction, alignment space) of a relative depth decoded from a `space` target."""
    if space == "disparity":
        with np.errstate(divide="ignore"):
            return 1.0 / np.asarray(depth, np.float64), "disparity"
    return np.asarray(depth, np.float64), "depth"


class DepthScorer(Scorer):
    """Affine-invariant depth (Marigold / GenPercept protocol)."""

    task = "depth"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.per_image: dict[str, list[dict[str, float]]] = {"model": [], "baseline": []}

    def _mask(self, sample: BenchmarkSample) -> np.ndarray:
        depth = np.asarray(sample.depth)
        valid = np.isfinite(depth) & (depth > 0)
        if sample.valid is not None:
            valid &= sample.valid
        crop = depth_preset(sample.benchmark).crop_mask(depth.shape)
        return valid if crop is None else valid & crop

    def applies(self, sample: BenchmarkSample) -> bool:
        """A sample with depth and at least one scored pixel."""
        if sample.depth is None:
            return False
        preset = depth_preset(sample.benchmark)
        return bool(preset.valid_mask(sample.depth, self._mask(sample)).any())

    def score(self, sample: BenchmarkSample, depth: np.ndarray, space: str) -> dict[str, float]:
        """The per-image depth figures of a relative depth decoded from a `space` target."""
        pred, align = scored_depth(depth, space)
        preset = depth_preset(sample.benchmark)
        mask = self._mask(sample)
        target = np.asarray(sample.depth)
        return depth_metrics(pred, target, mask, align, depth_range=preset.depth_range)

    def add(self, sample: BenchmarkSample, query: Query, prediction: np.ndarray) -> list[dict]:
        """Decode, align and score the prediction and the mean-depth baseline."""
        from dicepipe.targets.depth import decode_depth

        space = self.params.depth_space
        model = self.score(sample, decode_depth(prediction, space=space), space)
        self.empty.append(is_flat(prediction))
        base_depth = self.baselines.depth_map(sample.rgb.shape[:2])
        baseline = self.score(sample, base_depth, space)
        for system, figures in (("model", model), ("baseline", baseline)):
            self.per_image[system].append(figures)
        return self.rows(sample, query, model, baseline)

    def target(self, sample: BenchmarkSample, query: Query) -> np.ndarray:
        """The ground-truth depth drawn as a depth target."""
        from dicepipe.targets.depth import encode_depth

        depth = np.where(self._mask(sample), sample.depth, np.nan).astype(np.float32)
        if not np.isfinite(depth).any():
            return np.zeros_like(sample.rgb)
        return encode_depth(depth, space=self.params.depth_space)[0]

    def summary(self) -> dict[str, dict[str, Any]]:
        """Mean per-image figures of each system."""
        return {system: mean_of(rows, METRIC_KEYS) for system, rows in self.per_image.items()}


class NormalScorer(Scorer):
    """Angular error of surface normals, pooled and per image."""

    task = "normal"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.errors: dict[str, list[np.ndarray]] = {"model": [], "baseline": []}

    def applies(self, sample: BenchmarkSample) -> bool:
        """A sample with at least one finite, non-zero ground-truth normal."""
        if sample.normals is None:
            return False
        norm = np.linalg.norm(sample.normals, axis=-1)
        return bool((np.isfinite(norm) & (norm > 0)).any())

    def add(self, sample: BenchmarkSample, query: Query, prediction: np.ndarray) -> list[dict]:
        """Decode and score the prediction and the mean-normal baseline."""
        from dicepipe.targets.normals import decode_normals

        self.empty.append(is_flat(prediction))
        outputs = {
            "model": decode_normals(prediction),
            "baseline": self.baselines.normal_map(sample.rgb.shape[:2]),
        }
        figures = {}
        for system, normals in outputs.items():
            errors = angular_errors_deg(normals, sample.normals, undefined_pred="error")
            self.errors[system].append(errors.astype(np.float32))
            figures[system] = angular_error_stats(errors)
        return self.rows(sample, query, figures["model"], figures["baseline"])

    def target(self, sample: BenchmarkSample, query: Query) -> np.ndarray:
        """The ground-truth normals drawn as a normal target."""
        from dicepipe.targets.normals import encode_normals

        return encode_normals(np.asarray(sample.normals))

    def summary(self) -> dict[str, dict[str, Any]]:
        """`pooled_*` over all pixels and `per_image_*` averaged over images, per system."""
        return {system: _normal_summary(errors) for system, errors in self.errors.items()}


def _normal_summary(errors: list[np.ndarray]) -> dict[str, Any]:
    """The figures of `metrics.normals.normal_benchmark_metrics` from per-image errors."""
    pooled = angular_error_stats(np.concatenate(errors))
    per_image = [angular_error_stats(e) for e in errors]
    result: dict[str, Any] = {f"pooled_{key}": value for key, value in pooled.items()}
    for key in pooled:
        result[f"per_image_{key}"] = float(np.mean([stats[key] for stats in per_image]))
    return {**result, "n_images": len(errors), "n_pixels": int(sum(e.size for e in errors))}

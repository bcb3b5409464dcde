"""Depth benchmark presets (range and evaluation crop) as Marigold defines them.

Source protocol: Marigold `src/dataset/{nyu,kitti,scannet,diode,eth3d}_dataset.py` and
`config/dataset_depth/data_*.yaml` (GenPercept evaluates with the same settings):

- NYUv2 (labeled test split): depth in (1e-3, 10) m, Eigen crop rows 45:471, cols 41:601 of
  the 480 x 640 image;
- KITTI (Eigen test split): (1e-5, 80) m, on the KITTI benchmark crop (bottom 352 rows,
  central 1216 columns); evaluation crop "eigen" (Marigold's config: rows 0.3324324-0.91351351,
  cols 0.0359477-0.96405229 of the cropped image) or "garg" (rows 0.40810811-0.99189189,
  cols 0.03594771-0.96405229), the fractions of BTS's `bts_eval.py`;
- ScanNet: (1e-3, 10) m, no crop; DIODE: (0.6, 350) m plus the dataset's own validity mask
  (Marigold uses the mask alone; here it is also intersected with the range); ETH3D:
  (1e-5, inf) m, no crop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np

from dicepipe.metrics.depth import DepthRange, Space, gt_valid_mask, mean_depth_metrics

Crop = Literal["nyu_eigen", "kitti_eigen", "kitti_garg"]
NYU_SHAPE = (480, 640)
KITTI_BENCHMARK_SHAPE = (352, 1216)
_NYU_EIGEN_ROWS, _NYU_EIGEN_COLS = slice(45, 471), slice(41, 601)
_KITTI_FRACTIONS = {  # (row start, row end, col start, col end) as fractions of height, width
    "kitti_garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "kitti_eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}


@dataclass(frozen=True)
class DepthBenchmark:
    """One benchmark's evaluation settings: open depth range in metres and evaluation crop."""

    name: str
    min_depth: float
    max_depth: float
    crop: Crop | None = None

    @property
    def depth_range(self) -> DepthRange:
        """(min_depth, max_depth), as `depth_metrics(depth_range=...)` takes it."""
        return (self.min_depth, self.max_depth)

    def crop_mask(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The evaluation crop as a boolean (H, W) mask, or None without a crop."""
        if self.crop is None:
            return None
        if self.crop == "nyu_eigen":
            return nyu_eigen_crop_mask(shape)
        return kitti_crop_mask(shape, self.crop)

    def valid_mask(self, target: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Ground-truth pixels scored: finite, inside the range, inside the crop and `mask`."""
        target = np.asarray(target)
        return gt_valid_mask(target, _merge(self.crop_mask(target.shape), mask), self.depth_range)


DEPTH_BENCHMARKS: Mapping[str, DepthBenchmark] = MappingProxyType(
    {
        "nyuv2": DepthBenchmark("nyuv2", 1e-3, 10.0, "nyu_eigen"),
        "kitti": DepthBenchmark("kitti", 1e-5, 80.0, "kitti_eigen"),
        "kitti_garg": DepthBenchmark("kitti_garg", 1e-5, 80.0, "kitti_garg"),
        "scannet": DepthBenchmark("scannet", 1e-3, 10.0),
        "diode": DepthBenchmark("diode", 0.6, 350.0),
        "eth3d": DepthBenchmark("eth3d", 1e-5, float("inf")),
    }
)


def get_depth_benchmark(benchmark: str | DepthBenchmark) -> DepthBenchmark:
    """The preset named `benchmark` (a DepthBenchmark passes through)."""
    if isinstance(benchmark, DepthBenchmark):
        return benchmark
    try:
        return DEPTH_BENCHMARKS[benchmark]
    except KeyError:
        raise ValueError(
            f"unknown depth benchmark {benchmark!r}: {sorted(DEPTH_BENCHMARKS)}"
        ) from None


def nyu_eigen_crop_mask(shape: tuple[int, int]) -> np.ndarray:
    """Eigen et al.'s NYUv2 evaluation crop (rows 45:471, cols 41:601) of a 480 x 640 image."""
    if tuple(shape) != NYU_SHAPE:
        raise ValueError(f"the NYUv2 Eigen crop is defined on {NYU_SHAPE} images, got {shape}")
    mask = np.zeros(NYU_SHAPE, bool)
    mask[_NYU_EIGEN_ROWS, _NYU_EIGEN_COLS] = True
    return mask


def kitti_crop_mask(shape: tuple[int, int], crop: Crop = "kitti_eigen") -> np.ndarray:
    """Garg's or Eigen's KITTI evaluation crop as fractions of the (benchmark-cropped) image."""
    if crop not in _KITTI_FRACTIONS:
        raise ValueError(f"KITTI crop must be one of {sorted(_KITTI_FRACTIONS)}, got {crop!r}")
    height, width = shape
    top, bottom, left, right = _KITTI_FRACTIONS[crop]
    mask = np.zeros((height, width), bool)
    mask[int(top * height) : int(bottom * height), int(left * width) : int(right * width)] = True
    return mask


def kitti_benchmark_crop(array: np.ndarray) -> np.ndarray:
    """The KITTI benchmark crop of an (H, W, ...) array: the bottom 352 rows and the central
    1216 columns (left margin (W - 1216) // 2), as Marigold's `kitti_benchmark_crop`."""
    height, width = array.shape[:2]
    crop_h, crop_w = KITTI_BENCHMARK_SHAPE
    if height < crop_h or width < crop_w:
        raise ValueError(f"KITTI image {height} x {width} is smaller than the benchmark crop")
    top, left = height - crop_h, (width - crop_w) // 2
    return array[top : top + crop_h, left : left + crop_w]


def benchmark_depth_metrics(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    benchmark: str | DepthBenchmark,
    masks: Sequence[np.ndarray | None] | None = None,
    align: Space = "depth",
) -> dict[str, float | str]:
    """`mean_depth_metrics` with the benchmark's range and crop (and optional extra masks,
    such as DIODE's validity masks), plus the benchmark's name."""
    bench = get_depth_benchmark(benchmark)
    masks = [None] * len(targets) if masks is None else masks
    if len(masks) != len(targets):
        raise ValueError(f"got {len(masks)} masks for {len(targets)} targets")
    crops = [_merge(bench.crop_mask(np.shape(t)), m) for t, m in zip(targets, masks, strict=True)]
    result = mean_depth_metrics(preds, targets, crops, align, depth_range=bench.depth_range)
    return {**result, "benchmark": bench.name}


def _merge(crop: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray | None:
    if mask is None:
        return crop
    mask = np.asarray(mask, bool)
    if crop is None:
        return mask
    if mask.shape != crop.shape:
        raise ValueError(f"mask {mask.shape} does not match the image {crop.shape}")
    return crop & mask

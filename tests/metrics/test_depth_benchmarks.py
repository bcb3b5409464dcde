"""Depth benchmark presets: Marigold's ranges and crops."""

import dataclasses

import numpy as np
import pytest

from dicepipe.metrics.depth_benchmarks import (
    DEPTH_BENCHMARKS,
    DepthBenchmark,
    benchmark_depth_metrics,
    get_depth_benchmark,
    kitti_benchmark_crop,
    kitti_crop_mask,
    nyu_eigen_crop_mask,
)


def _bounds(mask):
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def test_presets_are_frozen_and_as_published():
    assert DEPTH_BENCHMARKS["nyuv2"].depth_range == (1e-3, 10.0)
    assert DEPTH_BENCHMARKS["kitti"] == DepthBenchmark("kitti", 1e-5, 80.0, "kitti_eigen")
    assert DEPTH_BENCHMARKS["scannet"].depth_range == (1e-3, 10.0)
    assert DEPTH_BENCHMARKS["diode"].depth_range == (0.6, 350.0)
    assert DEPTH_BENCHMARKS["eth3d"].depth_range == (1e-5, float("inf"))
    with pytest.raises(TypeError):
        DEPTH_BENCHMARKS["nyuv2"] = DEPTH_BENCHMARKS["kitti"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEPTH_BENCHMARKS["nyuv2"].max_depth = 20.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown depth benchmark"):
        get_depth_benchmark("middlebury")


def test_crop_masks():
    assert _bounds(nyu_eigen_crop_mask((480, 640))) == (45, 471, 41, 601)
    with pytest.raises(ValueError, match="480, 640"):
        nyu_eigen_crop_mask((240, 320))
    # on the 352 x 1216 KITTI benchmark crop: int(fraction * size)
    assert _bounds(kitti_crop_mask((352, 1216), "kitti_eigen")) == (117, 321, 43, 1172)
    assert _bounds(kitti_crop_mask((352, 1216), "kitti_garg")) == (143, 349, 43, 1172)
    image = np.arange(375 * 1242).reshape(375, 1242)
    cropped = kitti_benchmark_crop(image)
    assert cropped.shape == (352, 1216) and cropped[0, 0] == image[23, 13]
    with pytest.raises(ValueError, match="smaller"):
        kitti_benchmark_crop(image[:300])


def test_valid_mask_combines_range_crop_and_extra_mask():
    nyu = DEPTH_BENCHMARKS["nyuv2"]
    depth = np.full((480, 640), 5.0)
    depth[100, 100] = 12.0  # beyond 10 m
    depth[101, 101] = np.nan
    valid = nyu.valid_mask(depth)
    assert valid.sum() == 426 * 560 - 2 and not valid[0, 0]
    extra = np.zeros((480, 640), bool)
    extra[200, 200] = True
    assert nyu.valid_mask(depth, extra).sum() == 1
    assert DEPTH_BENCHMARKS["scannet"].crop_mask((4, 4)) is None


def test_benchmark_metrics_ignore_pixels_outside_the_crop():
    target = np.full((480, 640), 4.0)
    pred = target.copy()
    pred[:45] = 100.0  # wrong only outside the Eigen crop
    m = benchmark_depth_metrics([pred], [target], "nyuv2", align="none")
    assert m["absrel"] == 0.0 and m["benchmark"] == "nyuv2" and m["n_images"] == 1
    pred[200, 200] = 100.0  # clipped to the 10 m maximum
    m = benchmark_depth_metrics([pred], [target], "nyuv2", align="none")
    assert m["absrel"] == pytest.approx((10.0 - 4.0) / 4.0 / (426 * 560))

"""Depth metrics against hand-computed values."""

import numpy as np
import pytest

from dicepipe.metrics.depth import align_depth, depth_metrics, fit_scale_shift, mean_depth_metrics

TARGET = np.array([[1.0, 2.0], [4.0, 8.0]])


def test_perfect_prediction():
    m = depth_metrics(TARGET, TARGET, align="none")
    assert m["absrel"] == 0.0 and m["rmse"] == 0.0
    assert m["delta1"] == m["delta2"] == m["delta3"] == 1.0


def test_known_scale_and_shift_recovered_in_depth_space():
    pred = (TARGET - 0.5) / 3.0  # target = 3 * pred + 0.5
    aligned, scale, shift = align_depth(pred, TARGET, space="depth")
    assert scale == pytest.approx(3.0) and shift == pytest.approx(0.5)
    np.testing.assert_allclose(aligned, TARGET)
    assert depth_metrics(pred, TARGET)["absrel"] == pytest.approx(0.0, abs=1e-12)


def test_known_scale_and_shift_recovered_in_disparity_space():
    pred = 1.0 / ((1.0 / TARGET - 0.1) / 2.0)  # 1/target = 2 / pred + 0.1
    aligned, scale, shift = align_depth(pred, TARGET, space="disparity")
    assert scale == pytest.approx(2.0) and shift == pytest.approx(0.1)
    np.testing.assert_allclose(aligned, TARGET)


def test_hand_computed_values_without_alignment():
    pred = np.array([[1.1, 2.0], [6.0, 8.0]])  # ratios 1.1, 1, 1.5, 1
    m = depth_metrics(pred, TARGET, align="none")
    assert m["absrel"] == pytest.approx((0.1 + 0 + 0.5 + 0) / 4)
    assert m["delta1"] == 0.75 and m["delta2"] == 1.0  # 1.5 < 1.5625
    assert m["rmse"] == pytest.approx(np.sqrt((0.01 + 4.0) / 4))


def test_invalid_pixels_and_mask_are_ignored():
    target = np.array([[1.0, np.nan], [0.0, 2.0]])
    pred = np.array([[1.0, 5.0], [3.0, 4.0]])
    m = depth_metrics(pred, target, align="none")
    assert m["absrel"] == pytest.approx(0.5)  # pixels (0,0) exact and (1,1) off by 100%
    masked = depth_metrics(pred, target, mask=np.array([[True, True], [True, False]]), align="none")
    assert masked["absrel"] == 0.0


def test_mean_over_images_and_errors():
    pred = np.array([[1.1, 2.0], [6.0, 8.0]])
    mean = mean_depth_metrics([TARGET, pred], [TARGET, TARGET], align="none")
    assert mean["absrel"] == pytest.approx(0.15 / 2) and mean["n_images"] == 2
    with pytest.raises(ValueError, match="shape"):
        depth_metrics(TARGET, TARGET[:1])
    with pytest.raises(ValueError, match="constant"):
        fit_scale_shift(np.ones(4), np.arange(4.0))
    with pytest.raises(ValueError, match="no valid pixels"):
        depth_metrics(np.full((2, 2), np.nan), TARGET, align="none")
    with pytest.raises(ValueError, match="space"):
        align_depth(TARGET, TARGET, space="log")

"""Depth metrics (Marigold protocol) against hand-computed values."""

import numpy as np
import pytest

from dicepipe.metrics.depth import (
    MIN_EVAL_DEPTH,
    align_depth,
    clip_depth,
    depth_metrics,
    fit_scale_shift,
    gt_valid_mask,
    mean_depth_metrics,
)

TARGET = np.array([[1.0, 2.0], [4.0, 8.0]])


def test_perfect_prediction():
    m = depth_metrics(TARGET, TARGET, align="none")
    assert m["absrel"] == m["sqrel"] == m["rmse"] == m["rmse_log"] == 0.0
    assert m["delta1"] == m["delta2"] == m["delta3"] == 1.0
    assert m["n_pixels"] == 4


def test_known_scale_and_shift_recovered_in_depth_space():
    pred = (TARGET - 0.5) / 3.0  # target = 3 * pred + 0.5
    aligned, scale, shift = align_depth(pred, TARGET, space="depth")
    assert scale == pytest.approx(3.0) and shift == pytest.approx(0.5)
    np.testing.assert_allclose(aligned, TARGET)
    assert depth_metrics(pred, TARGET)["absrel"] == pytest.approx(0.0, abs=1e-12)


def test_disparity_space_treats_the_prediction_as_disparity():
    pred_disparity = (1.0 / TARGET - 0.1) / 2.0  # 1 / target = 2 * pred + 0.1
    aligned, scale, shift = align_depth(pred_disparity, TARGET, space="disparity")
    assert scale == pytest.approx(2.0) and shift == pytest.approx(0.1)
    np.testing.assert_allclose(aligned, TARGET)
    assert depth_metrics(pred_disparity, TARGET, align="disparity")["absrel"] < 1e-12


def test_disparity_is_floored_at_1e_3_after_alignment():
    target = np.array([1.0, 2.0, 4.0, 8.0])
    pred = np.append(1.0 / target[:3], -5.0)  # fitted on pred > 0: scale 1, shift 0
    aligned, scale, shift = align_depth(pred, target, space="disparity")
    assert (scale, shift) == (pytest.approx(1.0), pytest.approx(0.0, abs=1e-12))
    assert aligned[3] == pytest.approx(1e3)  # disparity -5 -> 1e-3 -> 1000 m
    m = depth_metrics(pred, target, align="disparity", depth_range=(1e-3, 10.0))
    assert m["absrel"] == pytest.approx((10.0 - 8.0) / 8.0 / 4)  # clipped to the 10 m maximum


def test_hand_computed_values_without_alignment():
    pred = np.array([[1.1, 2.0], [6.0, 8.0]])  # ratios 1.1, 1, 1.5, 1
    m = depth_metrics(pred, TARGET, align="none")
    assert m["absrel"] == pytest.approx((0.1 + 0 + 0.5 + 0) / 4)
    assert m["sqrel"] == pytest.approx((0.01 / 1 + 4.0 / 4) / 4)
    assert m["rmse"] == pytest.approx(np.sqrt((0.01 + 4.0) / 4))
    assert m["rmse_log"] == pytest.approx(np.sqrt((np.log(1.1) ** 2 + np.log(1.5) ** 2) / 4))
    assert m["delta1"] == 0.75 and m["delta2"] == 1.0  # 1.5 < 1.5625


def test_bad_predictions_count_as_errors_with_a_ground_truth_only_mask():
    target = np.array([1.0, 2.0, 4.0, 8.0, 3.0, 5.0])
    pred = target.copy()
    pred[[0, 3]] = -1.0  # a third of the prediction is invalid
    m = depth_metrics(pred, target, align="none")
    # the old pred-and-gt mask dropped these pixels: AbsRel 0, delta1 1. Marigold clips the
    # prediction to d >= 1e-6 before scoring, so each bad pixel has AbsRel (g - 1e-6) / g.
    expected = ((1 - MIN_EVAL_DEPTH) / 1 + (8 - MIN_EVAL_DEPTH) / 8) / 6
    assert m["absrel"] == pytest.approx(expected) and m["absrel"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["delta1"] == pytest.approx(4 / 6) and m["n_pixels"] == 6
    ranged = depth_metrics(pred, target, align="none", depth_range=(1e-3, 10.0))
    assert ranged["absrel"] == pytest.approx(((1 - 1e-3) / 1 + (8 - 1e-3) / 8) / 6)
    nan_pred = np.where(pred < 0, np.nan, pred)  # NaN is an error too, not a hole
    assert depth_metrics(nan_pred, target, align="none")["absrel"] == pytest.approx(expected)


def test_alignment_fits_every_valid_pixel_where_the_prediction_is_finite():
    target = np.array([1.0, 2.0, 4.0, 8.0, 3.0, 5.0])
    pred = target.copy()
    pred[0] = -1.0  # kept in the fit (Marigold fits on the ground-truth mask)
    pred[1] = np.nan  # a non-finite value cannot be fitted
    _, scale, shift = align_depth(pred, target)
    fitted = np.polyfit(pred[[0, 2, 3, 4, 5]], target[[0, 2, 3, 4, 5]], 1)
    assert (scale, shift) == (pytest.approx(fitted[0]), pytest.approx(fitted[1]))


def test_invalid_ground_truth_and_mask_are_ignored():
    target = np.array([[1.0, np.nan], [0.0, 2.0]])
    pred = np.array([[1.0, 5.0], [3.0, 4.0]])
    np.testing.assert_array_equal(gt_valid_mask(target), [[True, False], [False, True]])
    m = depth_metrics(pred, target, align="none")
    assert m["absrel"] == pytest.approx(0.5)  # pixel (0,0) exact, (1,1) off by 100%
    masked = depth_metrics(pred, target, mask=np.array([[True, True], [True, False]]), align="none")
    assert masked["absrel"] == 0.0


def test_depth_range_is_open_on_the_ground_truth_and_clips_the_prediction():
    target = np.array([0.5, 1.0, 10.0, 4.0])
    np.testing.assert_array_equal(gt_valid_mask(target, depth_range=(0.5, 10.0)), [0, 1, 0, 1])
    clipped = clip_depth([20.0, -3.0, np.nan, 2.0], (0.5, 10.0))
    np.testing.assert_allclose(clipped, [10, 0.5, 0.5, 2])
    np.testing.assert_allclose(clip_depth([np.inf, 1e-9]), [MIN_EVAL_DEPTH, MIN_EVAL_DEPTH])
    pred = np.array([9.0, 20.0, 9.0, 4.0])
    m = depth_metrics(pred, target, align="none", depth_range=(0.5, 5.0))
    assert m["n_pixels"] == 2 and m["absrel"] == pytest.approx((5.0 - 1.0) / 1.0 / 2)


def test_constant_prediction_aligns_to_the_mean():
    assert fit_scale_shift(np.ones(4), np.arange(4.0)) == (0.0, 1.5)
    aligned, scale, _ = align_depth(np.full((2, 2), 7.0), TARGET)
    assert scale == 0.0 and np.allclose(aligned, TARGET.mean())


def test_mean_over_images_and_errors():
    pred = np.array([[1.1, 2.0], [6.0, 8.0]])
    mean = mean_depth_metrics([TARGET, pred], [TARGET, TARGET], align="none")
    assert mean["absrel"] == pytest.approx(0.15 / 2) and mean["n_images"] == 2
    assert set(mean) >= {"sqrel", "rmse_log", "delta3"}
    with pytest.raises(ValueError, match="shape"):
        depth_metrics(TARGET, TARGET[:1])
    with pytest.raises(ValueError, match="no valid pixels"):
        depth_metrics(TARGET, np.full((2, 2), np.nan), align="none")
    with pytest.raises(ValueError, match="space"):
        align_depth(TARGET, TARGET, space="log")
    with pytest.raises(ValueError, match="masks"):
        mean_depth_metrics([TARGET], [TARGET], masks=[None, None])
    all_bad = depth_metrics(np.full((2, 2), np.nan), TARGET)  # no fit possible: still scored
    assert all_bad["delta1"] == 0.0 and all_bad["scale"] == 1.0

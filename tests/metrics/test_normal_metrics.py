"""Normal metrics against hand-computed angles."""

import numpy as np
import pytest

from dicepipe.metrics.normals import (
    angular_error_stats,
    angular_errors_deg,
    normal_benchmark_metrics,
    normal_metrics,
)


def _rotated_x(deg):
    rad = np.radians(deg)
    return np.array([0.0, np.sin(rad), np.cos(rad)])


def _rotation_about_y(deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def test_perfect_and_known_angles():
    target = np.broadcast_to([0.0, 0.0, 1.0], (1, 4, 3))
    pred = np.stack([_rotated_x(a) for a in (0.0, 10.0, 20.0, 40.0)])[None]
    np.testing.assert_allclose(angular_errors_deg(pred, target), [0, 10, 20, 40], atol=1e-6)
    m = normal_metrics(pred, target)
    assert m["mean"] == pytest.approx(17.5) and m["median"] == pytest.approx(15.0)
    assert m["rmse"] == pytest.approx(np.sqrt((100 + 400 + 1600) / 4))
    assert (m["pct_5"], m["pct_7_5"], m["pct_11_25"], m["pct_22_5"], m["pct_30"]) == (
        25.0,
        25.0,
        50.0,
        75.0,
        75.0,
    )
    perfect = normal_benchmark_metrics(target, target)
    assert perfect["pooled_mean"] == perfect["per_image_mean"] == 0.0
    assert perfect["pooled_pct_5"] == 100.0


def test_a_known_rotation_gives_its_angle_everywhere():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(6, 5, 3))
    target[..., 1] = 0.0  # a rotation about y turns vectors in the x-z plane by its angle
    pred = target @ _rotation_about_y(25.0).T * 3.0  # rotated, and not unit length
    np.testing.assert_allclose(angular_errors_deg(pred, target), 25.0, atol=1e-6)


def test_ground_truth_only_mask_scores_bad_predictions():
    target = np.array([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])
    pred = np.array([[[0.0, 0.0, 5.0], [np.nan, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    # NaN and zero predictions score 90 degrees; the zero ground-truth pixel is not scored
    errors = angular_errors_deg(pred, target, undefined_pred="error")
    np.testing.assert_allclose(errors, [0.0, 90.0, 90.0], atol=1e-6)
    m = normal_benchmark_metrics(pred, target)
    assert m["pooled_mean"] == pytest.approx(60.0) and m["n_pixels"] == 3
    # pseudo-label audits skip undefined predictions (their NaN means "no label")
    np.testing.assert_allclose(angular_errors_deg(pred, target), [0.0], atol=1e-6)
    mask = np.array([[True, True, False, True]])
    assert normal_metrics([pred], [target], [mask])["n_pixels"] == 1
    assert normal_metrics([pred], [target], [mask], undefined_pred="error")["n_pixels"] == 2
    with pytest.raises(ValueError, match="undefined_pred"):
        angular_errors_deg(pred, target, undefined_pred="ignore")


def test_pooled_and_per_image_averages_differ_and_are_named():
    a = np.broadcast_to(_rotated_x(10.0), (2, 2, 3))  # 4 pixels at 10 degrees
    b = np.broadcast_to(_rotated_x(30.0), (1, 2, 3))  # 2 pixels at 30 degrees
    z = [np.broadcast_to([0.0, 0.0, 1.0], x.shape) for x in (a, b)]
    m = normal_benchmark_metrics([a, b], z)
    assert m["pooled_mean"] == pytest.approx((4 * 10 + 2 * 30) / 6)
    assert m["per_image_mean"] == pytest.approx((10 + 30) / 2)
    assert m["pooled_pct_11_25"] == pytest.approx(100 * 4 / 6)
    assert m["per_image_pct_11_25"] == pytest.approx(50.0)
    assert m["n_images"] == 2 and m["n_pixels"] == 6
    assert not {"mean", "median"} & set(m)  # never an unqualified average
    assert normal_metrics([a, b], z)["mean"] == m["pooled_mean"]


def test_errors():
    a = np.ones((2, 2, 3))
    with pytest.raises(ValueError, match="matching"):
        angular_errors_deg(a, a[:1])
    with pytest.raises(ValueError, match="no valid pixels"):
        normal_metrics(np.ones((1, 1, 3)), np.full((1, 1, 3), np.nan))
    with pytest.raises(ValueError, match="image 1 has no valid"):
        normal_benchmark_metrics([a, a], [a, np.zeros_like(a)])
    with pytest.raises(ValueError, match="no valid pixels"):
        angular_error_stats(np.array([]))

"""Normal metrics against hand-computed angles."""

import numpy as np
import pytest

from dicepipe.metrics.normals import angular_errors_deg, normal_metrics


def _rotated_x(deg):
    rad = np.radians(deg)
    return np.array([0.0, np.sin(rad), np.cos(rad)])


def test_perfect_and_known_angles():
    target = np.broadcast_to([0.0, 0.0, 1.0], (1, 4, 3))
    pred = np.stack([_rotated_x(a) for a in (0.0, 10.0, 20.0, 40.0)])[None]
    np.testing.assert_allclose(angular_errors_deg(pred, target), [0, 10, 20, 40], atol=1e-6)
    m = normal_metrics(pred, target)
    assert m["mean"] == pytest.approx(17.5) and m["median"] == pytest.approx(15.0)
    assert (m["pct_11_25"], m["pct_22_5"], m["pct_30"]) == (50.0, 75.0, 75.0)
    assert normal_metrics(target, target)["mean"] == 0.0


def test_unnormalised_nan_and_masked_pixels():
    target = np.array([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    pred = np.array([[[0.0, 0.0, 5.0], [np.nan, 0.0, 1.0], [0.0, 3.0, 0.0]]])
    np.testing.assert_allclose(angular_errors_deg(pred, target), [0.0, 90.0], atol=1e-6)
    mask = np.array([[True, True, False]])
    assert normal_metrics([pred], [target], [mask])["n_pixels"] == 1


def test_pooled_over_images_and_errors():
    a = np.broadcast_to(_rotated_x(10.0), (2, 2, 3))
    b = np.broadcast_to(_rotated_x(30.0), (1, 2, 3))
    z = [np.broadcast_to([0.0, 0.0, 1.0], x.shape) for x in (a, b)]
    m = normal_metrics([a, b], z)
    assert m["mean"] == pytest.approx((4 * 10 + 2 * 30) / 6) and m["n_pixels"] == 6
    with pytest.raises(ValueError, match="matching"):
        angular_errors_deg(a, b)
    with pytest.raises(ValueError, match="no valid pixels"):
        normal_metrics(np.full((1, 1, 3), np.nan), np.ones((1, 1, 3)))

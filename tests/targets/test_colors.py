import numpy as np
import pytest

from dicepipe.targets.colors import instance_colors


def _pairwise(c: np.ndarray) -> np.ndarray:
    f = c.astype(np.float64)
    d = np.linalg.norm(f[:, None] - f[None], axis=2)
    return d[np.triu_indices(len(c), 1)]


@pytest.mark.parametrize("seed", range(5))
def test_constraints_hold(seed):
    c = instance_colors(12, np.random.default_rng(seed))
    assert c.shape == (12, 3) and c.dtype == np.uint8
    assert np.linalg.norm(c.astype(np.float64), axis=1).min() >= 80
    assert _pairwise(c).min() >= 60


def test_custom_distances():
    c = instance_colors(8, np.random.default_rng(0), min_black_distance=200, min_distance=100)
    assert np.linalg.norm(c.astype(np.float64), axis=1).min() >= 200
    assert _pairwise(c).min() >= 100


def test_same_seed_same_bytes():
    a = instance_colors(20, np.random.default_rng(7))
    b = instance_colors(20, np.random.default_rng(7))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != instance_colors(20, np.random.default_rng(8)).tobytes()


def test_too_many_colours_shrinks_distance_and_terminates():
    c = instance_colors(300, np.random.default_rng(0))
    assert c.shape == (300, 3)
    assert np.linalg.norm(c.astype(np.float64), axis=1).min() >= 80
    assert _pairwise(c[:40]).min() >= 60  # the first colours keep the full spacing
    assert _pairwise(c).min() < 60


def test_zero_and_errors():
    assert instance_colors(0, np.random.default_rng(0)).shape == (0, 3)
    with pytest.raises(ValueError, match="non-negative"):
        instance_colors(-1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="min_black_distance"):
        instance_colors(3, np.random.default_rng(0), min_black_distance=300)
    with pytest.raises(TypeError, match="Generator"):
        instance_colors(3, 0)

"""The one prompt-point rule shared by SA-1B sampling, composites and encode."""

from __future__ import annotations

import numpy as np
import pytest

from dicepipe.params.encode import EncodeParams
from dicepipe.params.points import PointParams
from dicepipe.pipeline.examples import _point_target
from dicepipe.sampling import pixel_draw, point_count, prompt_points


def test_prompt_points_are_k_distinct_pixel_centres_inside_the_mask():
    mask = np.zeros((20, 30), bool)
    mask[4:9, 10:20] = True
    points = prompt_points(mask, 5, np.random.default_rng(0))
    assert points.shape == (5, 2) and points.dtype == np.float32
    assert len({tuple(p) for p in points.tolist()}) == 5
    for x, y in points:
        assert mask[int(y * 20), int(x * 30)]
    again = prompt_points(mask, 5, np.random.default_rng(0))
    assert np.array_equal(points, again)


def test_prefixes_of_a_draw_are_draws_of_fewer_points():
    first = pixel_draw(100, 5, np.random.default_rng(7))
    assert len(set(first.tolist())) == 5
    with pytest.raises(ValueError, match="empty mask"):
        prompt_points(np.zeros((4, 4), bool), 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="min <= max"):
        point_count(np.random.default_rng(0), 3, 2)


def test_encode_gives_k_points_when_sampling_stored_fewer():
    mask = np.zeros((16, 16), bool)
    mask[2:10, 3:12] = True
    params = EncodeParams(points=PointParams(min=5, max=5))
    stored = {1: [[0.25, 0.25], [0.5, 0.5]]}  # sample.sa1b.points.max was 2
    _, points, _ = _point_target("sa1b/x", [(1, mask)], stored, params)
    assert len(points) == 5
    for x, y in points:
        assert mask[int(y * 16), int(x * 16)]
    _, prefix, _ = _point_target("sa1b/x", [(1, mask)], {1: stored[1] * 3}, params)
    assert prefix == (stored[1] * 3)[:5]

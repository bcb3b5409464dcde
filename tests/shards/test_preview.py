"""Preview grids: tiles in rows, and the column titles above them."""

import numpy as np
import pytest

from dicepipe.shards.preview import HEADER_PX, grid


def test_titles_name_the_columns_in_a_band_above_the_tiles():
    red = np.zeros((10, 20, 3), np.uint8)
    red[..., 0] = 255
    plain = grid([[red, red]], tile=64, gap=4)
    titled = grid([[red, red]], tile=64, gap=4, titles=("input", "a title shrunk to fit"))
    assert plain.shape == (64, 132, 3) and titled.shape == (64 + HEADER_PX, 132, 3)
    assert np.array_equal(titled[HEADER_PX:], plain)  # the tiles are where they were, below
    band = titled[:HEADER_PX]
    for left in (0, 68):  # each column's title is drawn inside its own column
        assert band[:, left : left + 64].min() < 128
    assert band[:, 64:68].min() == 255


def test_more_titles_than_columns_is_an_error():
    with pytest.raises(ValueError, match="3 titles for 2 columns"):
        grid([[np.zeros((4, 4, 3), np.uint8)] * 2], titles=("a", "b", "c"))

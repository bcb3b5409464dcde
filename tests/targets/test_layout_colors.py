import numpy as np
import pytest

from dicepipe.targets.decode_masks import decode_instance_masks
from dicepipe.targets.layout_colors import (
    ideal_layout_colors,
    instance_color_note,
    layout_colors,
    mirror_layout_target,
)
from dicepipe.targets.segmentation import encode_instances


def _box(shape: tuple[int, int], ys: slice, xs: slice) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[ys, xs] = True
    return mask


def test_ideal_colour_encodes_centroid_and_size():
    owner = np.full((40, 80), -1)
    owner[0:20, 0:40] = 0  # centroid (20, 10) of 80 x 40, a quarter of the image
    owner[30:40, 70:80] = 1
    ideal = ideal_layout_colors(owner, 2, min_black_distance=80.0)
    lo = 47  # ceil(80 / sqrt(3))
    assert ideal[0] == pytest.approx([lo + 208 * 0.25, lo + 208 * 0.25, lo + 208 * 0.5])
    assert ideal[1][:2] == pytest.approx([lo + 208 * 75 / 80, lo + 208 * 35 / 40])
    assert np.linalg.norm(ideal, axis=1).min() >= 80


def test_same_masks_same_colours_whatever_the_generator():
    masks = [
        _box((30, 60), slice(0, 10), slice(0, 20)),
        _box((30, 60), slice(15, 30), slice(30, 60)),
    ]
    a, ta = encode_instances(masks, np.random.default_rng(1), scheme="layout")
    b, tb = encode_instances(masks, np.random.default_rng(2), scheme="layout")
    assert a.tobytes() == b.tobytes() and ta == tb


def test_close_instances_stay_apart_and_decode_separately():
    shape = (48, 48)
    masks = [_box(shape, slice(10, 20), slice(10, 20)), _box(shape, slice(10, 20), slice(21, 31))]
    target, table = encode_instances(masks, np.random.default_rng(0), scheme="layout")
    colours = np.array([r["color"] for r in table], dtype=np.float64)
    assert np.linalg.norm(colours[0] - colours[1]) >= 60
    assert len(decode_instance_masks(target)) == 2


def test_many_instances_always_finish_and_shrink_the_spacing():
    owner = np.arange(100).reshape(10, 10)  # more instances than 60-apart colours exist
    colours = layout_colors(owner, 100, list(range(100)))
    assert colours.shape == (100, 3) and colours.dtype == np.uint8
    gaps = np.linalg.norm(colours[:, None].astype(float) - colours[None].astype(float), axis=2)
    assert gaps[np.triu_indices(100, 1)].min() < 60  # the spacing had to shrink


def test_unknown_scheme_is_an_error():
    with pytest.raises(ValueError, match="unknown colour scheme 'rainbow'"):
        encode_instances([np.ones((4, 4), bool)], np.random.default_rng(0), scheme="rainbow")  # type: ignore[arg-type]


def test_the_mirrored_target_is_the_target_of_the_mirrored_masks():
    shape = (30, 60)
    masks = [_box(shape, slice(0, 30), slice(0, 12)), _box(shape, slice(5, 20), slice(30, 45))]
    target, _ = encode_instances(masks, np.random.default_rng(0), scheme="layout")
    mirrored, _ = encode_instances(
        [m[:, ::-1] for m in masks], np.random.default_rng(0), scheme="layout"
    )
    assert np.abs(mirror_layout_target(target, 47).astype(int) - mirrored).max() <= 1


def test_the_manifest_note_names_the_floor_only_for_layout():
    assert instance_color_note("random", 80.0) == {"scheme": "random"}
    assert instance_color_note("layout", 80.0) == {"scheme": "layout", "channel_floor": 47}

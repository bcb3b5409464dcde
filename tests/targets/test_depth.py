import numpy as np
import pytest

from dicepipe.targets.depth import decode_depth, encode_depth


def _depth(seed: int = 0, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 20.0, shape).astype(np.float32)


def test_disparity_near_is_bright_and_meta_holds_depth_quantiles():
    d = _depth()
    target, meta = encode_depth(d)
    assert target.dtype == np.uint8 and target.shape == (48, 64, 3)
    assert np.array_equal(target[..., 0], target[..., 1])
    assert np.array_equal(target[..., 0], target[..., 2])
    lo, hi = np.quantile(d.astype(np.float64), [0.02, 0.98])
    assert meta == {"space": "disparity", "lo": pytest.approx(lo), "hi": pytest.approx(hi)}
    assert target[np.unravel_index(d.argmin(), d.shape)][0] == 255
    assert target[np.unravel_index(d.argmax(), d.shape)][0] == 0


def test_depth_space_near_is_dark():
    d = _depth()
    target, meta = encode_depth(d, space="depth")
    assert meta["space"] == "depth"
    assert target[np.unravel_index(d.argmin(), d.shape)][0] == 0
    assert target[np.unravel_index(d.argmax(), d.shape)][0] == 255


@pytest.mark.parametrize("space", ["disparity", "depth"])
def test_round_trip_within_quantisation_on_clipped_range(space):
    d = _depth(1)
    target, meta = encode_depth(d, space=space)
    back = decode_depth(target, meta)
    assert back.dtype == np.float32
    clipped = np.clip(d.astype(np.float64), meta["lo"], meta["hi"])
    lo, hi = meta["lo"], meta["hi"]
    if space == "disparity":
        step = (1 / lo - 1 / hi) / 255
        err = np.abs(1 / back.astype(np.float64) - 1 / clipped)
    else:
        step = (hi - lo) / 255
        err = np.abs(back.astype(np.float64) - clipped)
    assert err.max() <= 0.5 * step * (1 + 1e-4)


def test_meta_space_wins_over_keyword():
    target, meta = encode_depth(_depth(2), space="depth")
    assert np.array_equal(decode_depth(target, meta), decode_depth(target, meta, space="depth"))
    assert np.array_equal(
        decode_depth(target, meta, space="disparity"), decode_depth(target, meta, space="depth")
    )


def test_relative_decode_without_meta():
    target = np.zeros((1, 3, 3), dtype=np.uint8)
    target[0, 1], target[0, 2] = 255, 51
    disp = decode_depth(target)
    assert disp[0, 0] == pytest.approx(10.0) and disp[0, 1] == pytest.approx(1.0)
    # disparity is affine in the stored value: 1/d = x * (1 - 1/10) + 1/10
    assert 1 / disp[0, 2] == pytest.approx(0.2 * 0.9 + 0.1, rel=1e-6)
    lin = decode_depth(target, space="depth")
    assert lin[0].tolist() == pytest.approx([1.0, 10.0, 1.0 + 0.2 * 9.0])


def test_invalid_pixels_are_zero_and_ignored_by_quantiles():
    d = _depth(3)
    d[0, :4] = [np.nan, 0.0, -1.0, np.inf]
    target, meta = encode_depth(d)
    assert not target[0, :4].any()
    valid = d[np.isfinite(d) & (d > 0)].astype(np.float64)
    assert meta["lo"] == pytest.approx(np.quantile(valid, 0.02))


def test_constant_depth_is_mid_grey():
    target, meta = encode_depth(np.full((4, 4), 3.0))
    assert (target == 128).all() and meta["lo"] == meta["hi"] == 3.0


def test_errors():
    with pytest.raises(ValueError, match="no valid depth pixels"):
        encode_depth(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        encode_depth(np.ones((4, 4, 1)))
    with pytest.raises(ValueError, match="float"):
        encode_depth(np.ones((4, 4), dtype=np.uint16))
    with pytest.raises(ValueError, match="space"):
        encode_depth(np.ones((4, 4)), space="log")
    with pytest.raises(ValueError, match="quantiles"):
        encode_depth(np.ones((4, 4)), quantiles=(0.9, 0.1))
    with pytest.raises(ValueError, match="uint8"):
        decode_depth(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        decode_depth(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="lo"):
        decode_depth(np.zeros((4, 4, 3), dtype=np.uint8), {"space": "depth"})

import numpy as np
import pytest

from dicepipe.targets.segmentation import encode_instances, encode_point_mask


def _squares() -> list[np.ndarray]:
    big = np.zeros((20, 20), dtype=bool)
    big[2:14, 2:14] = True  # 144 px
    small = np.zeros((20, 20), dtype=bool)
    small[10:16, 10:16] = True  # 36 px, 16 of them over `big`
    return [small, big]


def test_smaller_mask_on_top_and_table():
    masks = _squares()
    target, table = encode_instances(masks, np.random.default_rng(0), categories=[3, "cat"])
    small_c, big_c = (np.array(r["color"], dtype=np.uint8) for r in table)
    assert (target[10:16, 10:16] == small_c).all()
    assert (target[2:10, 2:10] == big_c).all()
    assert not target[16:, :].any() and not target[:, 16:].any()
    assert [r["instance"] for r in table] == [0, 1]
    assert [r["category"] for r in table] == [3, "cat"]
    assert [r["area"] for r in table] == [36, 144 - 16]
    assert all(isinstance(v, int) for r in table for v in r["color"])


def test_colours_follow_instance_colors_and_are_deterministic():
    a, ta = encode_instances(_squares(), np.random.default_rng(5))
    b, tb = encode_instances(_squares(), np.random.default_rng(5))
    assert a.tobytes() == b.tobytes() and ta == tb
    assert "category" not in ta[0]
    colours = np.array([r["color"] for r in ta], dtype=np.float64)
    assert np.linalg.norm(colours, axis=1).min() >= 80
    assert np.linalg.norm(colours[0] - colours[1]) >= 60


def test_hidden_instance_keeps_its_row():
    big = np.ones((8, 8), dtype=bool)
    inner = np.zeros((8, 8), dtype=bool)
    inner[2:4, 2:4] = True
    _, table = encode_instances([inner, big, inner.copy()], np.random.default_rng(0))
    # equal areas: later index painted last, so instance 2 hides instance 0
    assert [r["area"] for r in table] == [0, 60, 4]


def test_empty_list_needs_shape():
    target, table = encode_instances([], np.random.default_rng(0), shape=(5, 7))
    assert target.shape == (5, 7, 3) and not target.any() and table == []
    with pytest.raises(ValueError, match="no masks"):
        encode_instances([], np.random.default_rng(0))


def test_instance_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="one shape"):
        encode_instances([np.zeros((4, 4), bool), np.zeros((4, 5), bool)], rng)
    with pytest.raises(ValueError, match="categories"):
        encode_instances(_squares(), rng, categories=[1])
    with pytest.raises(ValueError, match="bool or integer"):
        encode_instances([np.zeros((4, 4), dtype=np.float32)], rng)
    with pytest.raises(ValueError, match="2-D"):
        encode_instances([np.zeros((4, 4, 1), dtype=bool)], rng)
    with pytest.raises(TypeError):
        encode_instances(_squares(), 3)


def test_point_mask_target_and_points_inside():
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:12, 20:33] = True
    for seed in range(20):
        target, points = encode_point_mask(mask, np.random.default_rng(seed))
        assert (target[mask] == 255).all() and not target[~mask].any()
        assert points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 2
        assert 1 <= len(points) <= 5
        xs = np.round(points[:, 0] * 40 - 0.5).astype(int)
        ys = np.round(points[:, 1] * 30 - 0.5).astype(int)
        assert mask[ys, xs].all()
        assert len(set(zip(xs.tolist(), ys.tolist(), strict=True))) == len(points)


def test_point_mask_counts_and_determinism():
    mask = np.ones((10, 10), dtype=np.uint8)
    counts = {len(encode_point_mask(mask, np.random.default_rng(s))[1]) for s in range(60)}
    assert counts == {1, 2, 3, 4, 5}
    _, p = encode_point_mask(mask, np.random.default_rng(1), min_points=3, max_points=3)
    assert len(p) == 3
    a = encode_point_mask(mask, np.random.default_rng(9))[1]
    assert a.tobytes() == encode_point_mask(mask, np.random.default_rng(9))[1].tobytes()


def test_point_mask_errors():
    with pytest.raises(ValueError, match="empty mask"):
        encode_point_mask(np.zeros((4, 4), bool), np.random.default_rng(0))
    with pytest.raises(ValueError, match="min_points"):
        encode_point_mask(np.ones((4, 4), bool), np.random.default_rng(0), min_points=0)
    with pytest.raises(ValueError, match="0 and 1"):
        encode_point_mask(np.full((4, 4), 2), np.random.default_rng(0))

"""Hair-matting composites: blend formula, joint transforms, points, determinism, F estimation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dicepipe.composite.geometry import BackgroundJitter, prepare_background
from dicepipe.composite.make import (
    CompositeError,
    CompositeParams,
    blend,
    cached_foreground,
    estimate_foreground,
    foreground_cache_key,
    make_composite,
)
from dicepipe.sources.synthetic.matting import render_hair_alpha

CLEAN = CompositeParams(size=96, bg_blur_prob=0.0, bg_noise_prob=0.0)


def _blob_alpha(h: int = 80, w: int = 64) -> np.ndarray:
    """Smooth, asymmetric (a flip would show) and fading out before the frame edge."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    blob = np.exp(-((xx - 22) ** 2 + (yy - 30) ** 2) / (2 * 12.0**2))
    bar = np.exp(-((xx - 50) ** 2) / (2 * 4.0**2) - ((yy - 55) / 12.0) ** 4)
    return np.clip(1.3 * np.maximum(blob, bar), 0, 1).astype(np.float32)


def _background(h: int = 120, w: int = 150) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], axis=2).astype(np.uint8)


def test_blend_is_exact_on_constants() -> None:
    out = blend(np.full((4, 4, 3), 200, np.uint8), np.full((4, 4), 0.25), np.full((4, 4, 3), 100))
    assert out.dtype == np.uint8 and (out == 125).all()


def test_make_composite_formula_on_constant_images() -> None:
    alpha = np.full((64, 64), 0.25, np.float32)
    alpha[24:40, 24:40] = 1.0  # a core above 0.5 for the prompt points
    fg = np.full((64, 64, 3), 200, np.uint8)
    bg = np.full((50, 70, 3), 100, np.uint8)
    for index in range(6):
        c = make_composite(fg, alpha, bg, CLEAN, seed=0, index=index)
        a = c.alpha.astype(np.float64) / 255
        # F and B constant: alpha*200 + (1-alpha)*100 = 100 + 100*alpha everywhere
        assert np.abs(c.image.astype(np.float64) - (100 + 100 * a)[..., None]).max() <= 1.0
        assert (c.image[c.alpha == 64] == 125).all() and (c.alpha == 64).sum() > 500
        assert (c.image[c.alpha == 0] == 100).all()


def test_alpha_stays_aligned_with_the_foreground() -> None:
    alpha = _blob_alpha()
    fg = np.repeat((alpha * 255)[..., None], 3, axis=2).astype(np.float32) / 255  # F encodes alpha
    black = np.zeros((10, 10, 3), np.uint8)
    params = replace(CLEAN, rotate_deg=45.0, translate_frac=0.2, scale_min=0.5)
    flips = set()
    for index in range(12):
        c = make_composite(fg, alpha, black, params, seed=3, index=index)
        flips.add(c.meta["placement"]["hflip"])
        a = c.alpha.astype(np.float64) / 255
        inside = a > 0.5
        # B = 0, so image = alpha * F = 255 * alpha**2 where F and alpha agree
        err = np.abs(c.image[..., 0] - 255 * a**2)[inside]
        assert err.max() <= 6.0
        mirrored = np.abs(c.image[..., 0] - 255 * a[:, ::-1] ** 2)[inside]
        assert mirrored.mean() > 10 * max(err.mean(), 1.0)  # the check would catch a misflip
    assert flips == {True, False}


def test_points_lie_inside_the_mask_and_target_matches_alpha() -> None:
    alpha = _blob_alpha()
    fg = np.full((80, 64, 3), 0.5, np.float32)
    counts = set()
    for index in range(20):
        c = make_composite(fg, alpha, _background(), CLEAN, seed=1, index=index)
        k = len(c.points)
        counts.add(k)
        assert c.points.dtype == np.float32 and c.points.shape == (k, 2) and 1 <= k <= 5
        xs = np.floor(c.points[:, 0] * 96).astype(int)
        ys = np.floor(c.points[:, 1] * 96).astype(int)
        np.testing.assert_allclose(c.points[:, 0], (xs + 0.5) / 96, atol=1e-6)
        assert (c.alpha[ys, xs] >= 128).all()  # alpha > 0.5
        assert len({(x, y) for x, y in zip(xs, ys, strict=True)}) == k
        assert c.target.shape == (96, 96, 3) and set(np.unique(c.target)) <= {0, 255}
        assert (c.target == c.target[..., :1]).all()
        assert ((c.target[..., 0] == 255) == (c.alpha >= 128)).mean() > 0.995
    assert len(counts) >= 3


def test_same_seed_same_bytes_and_each_index_regenerates_alone() -> None:
    alpha = render_hair_alpha(np.random.default_rng(0), 80)
    fg = np.full((80, 80, 3), (180, 120, 90), np.uint8)
    params = replace(CLEAN, bg_blur_prob=0.5, bg_noise_prob=0.5)

    def run(index: int) -> tuple[bytes, ...]:
        c = make_composite(fg, alpha, _background(), params, seed=9, index=index)
        return c.image.tobytes(), c.alpha.tobytes(), c.target.tobytes(), c.points.tobytes()

    batch = [run(i) for i in range(5)]
    assert run(3) == batch[3]
    assert [run(i) for i in range(5)] == batch
    assert len({b[0] for b in batch}) == 5
    assert run(3) != make_composite(fg, alpha, _background(), params, 10, 3).image.tobytes()


def test_too_little_foreground_is_a_composite_error() -> None:
    alpha = np.full((32, 32), 0.4, np.float32)
    with pytest.raises(CompositeError, match="^empty_composite: 0 pixels"):
        make_composite(np.zeros((32, 32, 3), np.uint8), alpha, _background(), CLEAN, 0, 0)


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="0 < scale_min <= scale_max"):
        CompositeParams(scale_min=1.2, scale_max=1.0)
    with pytest.raises(ValueError, match="points.max"):
        CompositeParams(min_mask_pixels=4)


def test_background_is_cover_cropped_and_jittered() -> None:
    bg = _background(120, 150)
    still = BackgroundJitter(crop_x=1.0, crop_y=0.0, blur_sigma=0.0, noise_std=0.0)
    out = prepare_background(bg, 96, still, np.random.default_rng(0))
    assert out.shape == (96, 96, 3) and out.dtype == np.float32
    assert out[0, -1, 0] > 240 and out[0, 0, 0] > 30  # right-hand crop of a 96x120 resize
    grey = prepare_background(bg[..., 0], 96, still, np.random.default_rng(0))
    assert grey.shape == (96, 96, 3) and (grey[..., 0] == grey[..., 2]).all()
    noisy = prepare_background(bg, 96, replace(still, noise_std=5.0), np.random.default_rng(0))
    assert 4.0 < float((noisy - out).std()) < 6.0
    blurred = prepare_background(bg, 96, replace(still, blur_sigma=2.0), np.random.default_rng(0))
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(out, axis=1)).mean()


def _bleed_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    alpha = render_hair_alpha(np.random.default_rng(4), 96).astype(np.float64)
    red, blue = np.array([220.0, 30.0, 30.0]), np.array([30.0, 30.0, 220.0])
    image = alpha[..., None] * red + (1 - alpha[..., None]) * blue
    return np.round(image).astype(np.uint8), alpha.astype(np.float32), red


def test_estimate_foreground_removes_the_backdrop_bleed() -> None:
    image, alpha, red = _bleed_scene()
    fg = estimate_foreground(image, alpha)
    assert fg.shape == (96, 96, 3) and fg.dtype == np.float32
    assert fg.min() >= 0.0 and fg.max() <= 1.0
    band = (alpha > 0.1) & (alpha < 0.9)
    raw_err = np.linalg.norm(image[band] - red, axis=1).mean()
    est_err = np.linalg.norm(fg[band] * 255 - red, axis=1).mean()
    assert raw_err > 100 and est_err < 0.02 * raw_err  # measured: 127.6 -> 0.23


def test_cached_foreground_cold_equals_warm(tmp_path: Path) -> None:
    image, alpha, _ = _bleed_scene()
    cold = cached_foreground(tmp_path, b"img", b"alpha", image, alpha)
    entries = list(tmp_path.rglob("*.png"))
    key = foreground_cache_key(b"img", b"alpha")
    assert [p.name for p in entries] == [f"{key}.png"] and entries[0].parent.name == key[:2]
    warm = cached_foreground(tmp_path, b"img", b"alpha", np.zeros_like(image), alpha)
    assert cold.dtype == np.uint8 and np.array_equal(cold, warm)  # warm never recomputes
    assert np.array_equal(cold, np.round(estimate_foreground(image, alpha) * 255))
    assert key != foreground_cache_key(b"im", b"galpha")  # length-prefixed, no collisions
    entries[0].write_bytes(b"")  # a damaged entry is recomputed, not trusted
    assert np.array_equal(cached_foreground(tmp_path, b"img", b"alpha", image, alpha), cold)

"""Low-light pairs: darker, noisy, seeded, the target untouched."""

from __future__ import annotations

import numpy as np
import pytest

from dicepipe.targets.lowlight import darken, lowlight_pair


def _image() -> np.ndarray:
    ramp = np.linspace(0, 255, 64, dtype=np.float64)
    return np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 128.0), axis=2).astype(
        np.uint8
    )


def test_darkened_image_is_darker_and_the_target_is_the_original():
    rgb = _image()
    dark, target = lowlight_pair(rgb, np.random.default_rng(0))
    assert dark.shape == rgb.shape and dark.dtype == np.uint8
    assert dark.mean() < 0.5 * rgb.mean()
    assert np.array_equal(target, rgb)


def test_same_generator_state_gives_the_same_pair():
    rgb = _image()
    first = darken(rgb, np.random.default_rng(3))
    assert np.array_equal(first, darken(rgb, np.random.default_rng(3)))
    assert not np.array_equal(first, darken(rgb, np.random.default_rng(4)))


def test_a_gamma_of_one_without_noise_is_a_plain_gain():
    rgb = _image()
    dark = darken(
        rgb, np.random.default_rng(0), gamma=(1, 1), gain=(0.5, 0.5), shot_noise=0, read_noise=0
    )
    assert np.abs(dark.astype(int) - np.round(rgb * 0.5)).max() <= 1


def test_bad_input_is_refused():
    with pytest.raises((TypeError, ValueError)):
        darken(_image(), np.random.RandomState(0))

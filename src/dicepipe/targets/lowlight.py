"""Low-light pairs for the few-shot `highlight` task (DICEPTION's "image-to-highlight").

LOL-v2, the paper's few-shot source, pairs real low-light captures with normal-light ones; the
sample has none, so pairs are made from well-lit images: the input is the image darkened by a
gamma curve and a gain, with signal-dependent (shot) and constant (read) noise, as a dark
exposure looks; the target is the original image.
"""

from __future__ import annotations

import numpy as np

from dicepipe.targets._checks import as_rgb_uint8, check_generator


def darken(
    rgb: np.ndarray,
    rng: np.random.Generator,
    *,
    gamma: tuple[float, float] = (2.0, 3.5),
    gain: tuple[float, float] = (0.4, 0.8),
    shot_noise: float = 0.03,
    read_noise: float = 0.01,
) -> np.ndarray:
    """A low-light version (H, W, 3) uint8 of `rgb`: gain * x ** gamma plus noise, gamma and
    gain drawn uniformly from their ranges with `rng`."""
    check_generator(rng)
    x = as_rgb_uint8(rgb).astype(np.float64) / 255.0
    g = rng.uniform(*gamma)
    k = rng.uniform(*gain)
    dark = k * x**g
    sigma = np.sqrt((shot_noise**2) * dark + read_noise**2)
    noisy = dark + sigma * rng.standard_normal(dark.shape)
    return np.clip(np.round(noisy * 255.0), 0, 255).astype(np.uint8)


def lowlight_pair(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of the highlight task: the darkened image and the original."""
    return darken(rgb, rng), as_rgb_uint8(rgb)

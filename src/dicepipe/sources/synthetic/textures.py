"""Seeded procedural solid textures (checker, stripes, value noise) for synthetic scenes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEXTURE_KINDS = ("checker", "stripes", "noise", "plain")
_LATTICE = 16


@dataclass(frozen=True, eq=False)
class Texture:
    """A solid texture: a pattern in [0, 1] mixing two linear-RGB albedos."""

    kind: str
    scale: float
    offset: np.ndarray  # (3,) shifts the pattern so surfaces never sit on a cell boundary
    axis: np.ndarray  # (3,) unit direction of the stripes
    color_a: np.ndarray  # (3,) linear RGB in [0, 1]
    color_b: np.ndarray  # (3,)
    lattice: np.ndarray  # (16, 16, 16) value-noise lattice


def random_color(rng: np.random.Generator, saturation: float, lightness: float) -> np.ndarray:
    """A linear-RGB colour: grey of `lightness` pulled toward a random hue by `saturation`."""
    hue = rng.uniform(0.0, 1.0, 3)
    hue = hue / max(hue.max(), 1e-6)
    return np.clip(lightness * ((1 - saturation) + saturation * hue), 0.02, 0.95)


def make_texture(
    rng: np.random.Generator,
    kind: str | None = None,
    saturation: float = 0.7,
    lightness: float = 0.6,
    scale: tuple[float, float] = (0.08, 0.5),
) -> Texture:
    """Draw a texture (of `kind`, or a random kind) with colours and a pattern cell size in
    metres (uniform in `scale`) from `rng`."""
    kind = kind if kind is not None else str(rng.choice(TEXTURE_KINDS))
    color_a = random_color(rng, saturation, lightness)
    if rng.uniform() < 0.5:
        color_b = color_a * rng.uniform(0.35, 0.75)
    else:
        color_b = random_color(rng, saturation, lightness * rng.uniform(0.5, 1.0))
    axis = rng.normal(size=3)
    return Texture(
        kind=kind,
        scale=float(rng.uniform(*scale)),
        offset=rng.uniform(0.1, 0.9, 3),
        axis=axis / np.linalg.norm(axis),
        color_a=color_a,
        color_b=color_b,
        lattice=rng.uniform(0.0, 1.0, (_LATTICE, _LATTICE, _LATTICE)),
    )


def value_noise(lattice: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Trilinear, smoothstep-eased value noise on a periodic lattice, values in [0, 1]."""
    size = lattice.shape[0]
    base = np.floor(coords)
    frac = coords - base
    frac = frac * frac * (3.0 - 2.0 * frac)
    idx = base.astype(np.int64) % size
    out = np.zeros(len(coords))
    for corner in range(8):
        bits = np.array([(corner >> k) & 1 for k in range(3)])
        cell = (idx + bits) % size
        weight = np.prod(np.where(bits, frac, 1.0 - frac), axis=1)
        out += weight * lattice[cell[:, 0], cell[:, 1], cell[:, 2]]
    return out


def pattern(texture: Texture, coords: np.ndarray) -> np.ndarray:
    """The texture's mixing weight in [0, 1] at (N, 3) local coordinates."""
    scaled = coords / texture.scale + texture.offset
    if texture.kind == "checker":
        return (np.floor(scaled).astype(np.int64).sum(axis=1) % 2).astype(np.float64)
    if texture.kind == "stripes":
        return (np.floor(scaled @ texture.axis * 1.5).astype(np.int64) % 2).astype(np.float64)
    if texture.kind == "noise":
        fbm = sum(
            value_noise(texture.lattice, scaled * 2.0**octave) * 0.5**octave for octave in range(3)
        )
        return np.clip((fbm / 1.75 - 0.5) * 2.0 + 0.5, 0.0, 1.0)
    return np.zeros(len(coords))


def albedo(texture: Texture, coords: np.ndarray) -> np.ndarray:
    """Linear-RGB albedo (N, 3) of `texture` at (N, 3) local coordinates."""
    w = pattern(texture, coords)[:, None]
    return (1.0 - w) * texture.color_a + w * texture.color_b

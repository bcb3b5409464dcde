"""Random instance colours that stay apart from black and from each other."""

from __future__ import annotations

import numpy as np

from dicepipe.targets._checks import check_generator

_BATCH = 64  # candidates drawn per attempt
_ATTEMPTS = 8  # failed attempts at one distance before it shrinks
_SHRINK = 0.9  # factor applied to the pairwise distance after _ATTEMPTS failures
_MAX_BLACK_DISTANCE = 255.0  # about half the RGB cube is farther than this from black


def _pick(
    rng: np.random.Generator, chosen: np.ndarray, min_black: float, min_dist: float
) -> np.ndarray | None:
    cand = rng.integers(0, 256, size=(_BATCH, 3)).astype(np.float64)
    ok = np.linalg.norm(cand, axis=1) >= min_black
    if len(chosen) and min_dist > 0:
        dist = np.linalg.norm(cand[:, None, :] - chosen[None, :, :], axis=2).min(axis=1)
        ok &= dist >= min_dist
    hits = np.flatnonzero(ok)
    return cand[hits[0]] if hits.size else None


def instance_colors(
    n: int,
    rng: np.random.Generator,
    *,
    min_black_distance: float = 80.0,
    min_distance: float = 60.0,
) -> np.ndarray:
    """Draw `n` random RGB colours, (n, 3) uint8, by rejection sampling.

    Every colour is at Euclidean RGB distance >= `min_black_distance` from black and, while
    possible, >= `min_distance` from every earlier colour. When 8 batches of 64 candidates
    all fail the pairwise test, the pairwise distance shrinks by x0.9 for this and every later
    colour (so the first colours keep the full spacing); below 1 it becomes 0. About 60-80
    colours fit at the default 60; beyond that the later colours are closer together, which
    a decoder with rgb_tolerance = 30 may merge. The draw only depends on `rng`, so the same
    seed gives the same colours, and the loop always ends.
    """
    check_generator(rng)
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not 0.0 <= min_black_distance <= _MAX_BLACK_DISTANCE:
        raise ValueError(
            f"min_black_distance must be in [0, {_MAX_BLACK_DISTANCE}], got {min_black_distance}"
        )
    if min_distance < 0:
        raise ValueError(f"min_distance must be >= 0, got {min_distance}")
    chosen = np.empty((0, 3), dtype=np.float64)
    dist = float(min_distance)
    while len(chosen) < n:
        for _ in range(_ATTEMPTS):
            colour = _pick(rng, chosen, min_black_distance, dist)
            if colour is not None:
                chosen = np.vstack([chosen, colour])
                break
        else:
            dist = dist * _SHRINK if dist * _SHRINK >= 1.0 else 0.0
    return chosen.astype(np.uint8)

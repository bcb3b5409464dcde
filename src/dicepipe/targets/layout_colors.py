"""Instance colours that the image determines: each instance's colour encodes where it is.

DICEPTION paints instances in random colours. A model trained in the one-step deterministic
mode regresses the expected target, and the expectation of a random colour is one grey for
every instance: the decoder then finds a single mask. Colours that are a function of the
instance itself (here its visible centroid and size) have a learnable expectation:

    R = lo + (255 - lo) * centroid_x / width
    G = lo + (255 - lo) * centroid_y / height
    B = lo + (255 - lo) * sqrt(visible_area / (height * width))

`lo` keeps every colour `min_black_distance` from black. Two instances closer than
`min_distance` in colour (similar place and size) cannot both keep their ideal colour: the
later one in paint order (larger first) takes the nearest free colour of a fixed lattice, so
the result stays a pure function of the masks. A mirror image moves every centroid from x to
width - x, so its colours follow from the target alone (`mirror_layout_target`).
"""

from __future__ import annotations

import math

import numpy as np

_LATTICE_STEP = 16  # spacing of the fallback colours in each channel
_SHRINK = 0.9  # factor applied to the pairwise distance when no lattice colour is free
_MAX_LO = 200  # the darkest channel value stays below this, whatever min_black_distance


def channel_floor(min_black_distance: float) -> int:
    """The smallest channel value whose grey (lo, lo, lo) is `min_black_distance` from black."""
    return min(_MAX_LO, math.ceil(min_black_distance / math.sqrt(3.0)))


def instance_color_note(scheme: str, min_black_distance: float) -> dict[str, object]:
    """What the shards' manifest records of the instance colours, so that a loader can mirror
    layout-coloured targets: the scheme and, for "layout", its channel floor."""
    if scheme != "layout":
        return {"scheme": scheme}
    return {"scheme": scheme, "channel_floor": channel_floor(min_black_distance)}


def ideal_layout_colors(owner: np.ndarray, n: int, min_black_distance: float) -> np.ndarray:
    """(n, 3) float colours from each instance's visible centroid and area in `owner`.

    `owner` (H, W) holds the visible instance index per pixel (-1: background). A hidden
    instance (no visible pixel) gets the colour of a zero-area instance at the image centre.
    """
    height, width = owner.shape
    lo = channel_floor(min_black_distance)
    span = 255.0 - lo
    ys, xs = np.nonzero(owner >= 0)
    ids = owner[ys, xs]
    area = np.bincount(ids, minlength=n).astype(np.float64)
    sum_x = np.bincount(ids, weights=xs + 0.5, minlength=n)
    sum_y = np.bincount(ids, weights=ys + 0.5, minlength=n)
    seen = area > 0
    cx = np.where(seen, sum_x / np.maximum(area, 1.0), width / 2.0) / width
    cy = np.where(seen, sum_y / np.maximum(area, 1.0), height / 2.0) / height
    size = np.sqrt(area / float(height * width))
    return lo + span * np.stack([cx, cy, size], axis=1)


def _lattice(lo: int) -> np.ndarray:
    values = np.unique(np.append(np.arange(lo, 256, _LATTICE_STEP), 255)).astype(np.float64)
    grid = np.stack(np.meshgrid(values, values, values, indexing="ij"), axis=-1)
    return grid.reshape(-1, 3)


def _free(candidates: np.ndarray, chosen: np.ndarray, min_dist: float) -> np.ndarray:
    if not len(chosen):
        return np.ones(len(candidates), dtype=bool)
    dist = np.linalg.norm(candidates[:, None, :] - chosen[None, :, :], axis=2).min(axis=1)
    return dist >= min_dist


def layout_colors(
    owner: np.ndarray,
    n: int,
    paint_order: list[int],
    *,
    min_black_distance: float = 80.0,
    min_distance: float = 60.0,
) -> np.ndarray:
    """(n, 3) uint8 colours for the instances painted in `owner`, a function of the masks only.

    Instances take their ideal colour (`ideal_layout_colors`) in `paint_order`; one that is
    closer than `min_distance` to an earlier colour takes the nearest lattice colour that is
    not (ties: the lattice order). When no lattice colour is free, the distance shrinks by
    x0.9 for it and every later instance, as `instance_colors` does.
    """
    if min_distance < 0:
        raise ValueError(f"min_distance must be >= 0, got {min_distance}")
    ideal = ideal_layout_colors(owner, n, min_black_distance)
    lattice = _lattice(channel_floor(min_black_distance))
    colours = np.zeros((n, 3), dtype=np.float64)
    chosen = np.empty((0, 3), dtype=np.float64)
    dist = float(min_distance)
    for i in paint_order:
        wanted = np.round(ideal[i])
        while not _free(wanted[None, :], chosen, dist)[0]:
            free = np.flatnonzero(_free(lattice, chosen, dist))
            if free.size:
                gap = np.linalg.norm(lattice[free] - ideal[i], axis=1)
                wanted = lattice[free[int(np.argmin(gap))]]
                break
            dist = dist * _SHRINK if dist * _SHRINK >= 1.0 else 0.0
        colours[i] = wanted
        chosen = np.vstack([chosen, wanted])
    return np.clip(colours, 0, 255).astype(np.uint8)


def mirror_layout_target(target: np.ndarray, floor: int) -> np.ndarray:
    """The layout-coloured target (H, W, 3) uint8 of the mirror image, `target` unflipped.

    Mirroring maps a centroid x to width - x, so R = floor + (255 - floor) * x / width becomes
    floor + 255 - R; G (height) and B (size) stay. Black background stays black.
    """
    flipped = np.ascontiguousarray(target[:, ::-1])
    painted = flipped.any(axis=-1)
    red = flipped[..., 0].astype(np.int16)
    flipped[..., 0] = np.where(painted, np.clip(floor + 255 - red, 0, 255), red).astype(np.uint8)
    return flipped

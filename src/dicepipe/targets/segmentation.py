"""Segmentation targets: instances painted in random colours, and point-prompted masks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from dicepipe.sampling import point_count, prompt_points
from dicepipe.targets._checks import as_bool_mask, check_generator
from dicepipe.targets.colors import instance_colors
from dicepipe.targets.layout_colors import layout_colors

WHITE = (255, 255, 255)


def _stack_masks(masks: Sequence[np.ndarray], shape: tuple[int, int] | None) -> np.ndarray:
    checked = [as_bool_mask(m, f"masks[{i}]") for i, m in enumerate(masks)]
    if not checked:
        if shape is None:
            raise ValueError("no masks and no shape given: cannot size the target")
        return np.zeros((0, *shape), dtype=bool)
    shapes = {m.shape for m in checked}
    if len(shapes) != 1:
        raise ValueError(f"all masks must share one shape, got {sorted(shapes)}")
    if shape is not None and tuple(shape) not in shapes:
        raise ValueError(f"masks have shape {checked[0].shape}, but shape={shape}")
    return np.stack(checked)


def encode_instances(
    masks: Sequence[np.ndarray],
    rng: np.random.Generator,
    *,
    categories: Sequence[int | str] | None = None,
    shape: tuple[int, int] | None = None,
    scheme: Literal["random", "layout"] = "random",
    **color_kwargs: float,
) -> tuple[np.ndarray, list[dict]]:
    """Paint boolean masks (H, W) in distinct colours on black; return (target, table).

    Colour i belongs to masks[i]: with scheme "random" (DICEPTION) it is drawn by
    `instance_colors(len(masks), rng, **color_kwargs)`; with "layout" it encodes the
    instance's visible centroid and size (`layout_colors`) and `rng` is not drawn from.
    Where masks overlap the smaller mask is painted on top (larger masks first, ties by
    index), so small objects stay visible. `table[i]` is {"instance": i, "color": [r, g, b],
    "category": categories[i] (only when given), "area": visible pixels}; a fully hidden
    mask keeps its row with area 0. `shape` sizes the all-black target when `masks` is empty.
    """
    check_generator(rng)
    stack = _stack_masks(masks, shape)
    n, height, width = stack.shape
    if categories is not None and len(categories) != n:
        raise ValueError(f"got {len(categories)} categories for {n} masks")
    owner = np.full((height, width), -1, dtype=np.int64)
    areas = stack.sum(axis=(1, 2))
    order = sorted(range(n), key=lambda j: (-int(areas[j]), j))
    for i in order:
        owner[stack[i]] = i
    if scheme == "random":
        colours = instance_colors(n, rng, **color_kwargs)
    elif scheme == "layout":
        colours = layout_colors(owner, n, order, **color_kwargs)
    else:
        raise ValueError(f"unknown colour scheme {scheme!r}; use 'random' or 'layout'")
    target = np.zeros((height, width, 3), dtype=np.uint8)
    painted = owner >= 0
    target[painted] = colours[owner[painted]]
    visible = np.bincount(owner[painted], minlength=n)
    table = []
    for i in range(n):
        row: dict = {"instance": i, "color": [int(c) for c in colours[i]]}
        if categories is not None:
            row["category"] = categories[i]
        row["area"] = int(visible[i])
        table.append(row)
    return target, table


def point_mask_target(mask: np.ndarray) -> np.ndarray:
    """The point-segmentation target of a mask: white (255, 255, 255) on black, (H, W, 3)."""
    m = as_bool_mask(mask)
    target = np.zeros((*m.shape, 3), dtype=np.uint8)
    target[m] = WHITE
    return target


def encode_point_mask(
    mask: np.ndarray,
    rng: np.random.Generator,
    *,
    min_points: int = 1,
    max_points: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Encode a point-prompted mask: (target, points).

    target is the mask in white (255, 255, 255) on black, (H, W, 3) uint8. k is drawn
    uniformly in [min_points, max_points], then k distinct mask pixels uniformly (with
    replacement only when the mask has fewer than k pixels). points is (k, 2) float32 of
    normalised pixel centres ((x + 0.5) / W, (y + 0.5) / H) in (0, 1).
    Raises ValueError("empty mask") when the mask has no pixel.
    """
    check_generator(rng)
    m = as_bool_mask(mask)
    if not 1 <= min_points <= max_points:
        raise ValueError(f"need 1 <= min_points <= max_points, got {min_points}, {max_points}")
    if not m.any():
        raise ValueError("empty mask")
    points = prompt_points(m, point_count(rng, min_points, max_points), rng)
    return point_mask_target(m), points


def decode_point_mask(target: np.ndarray, threshold: float = 127.5) -> np.ndarray:
    """A predicted point-segmentation target (H, W, 3) -> boolean mask: channel mean above
    `threshold` (the encoder draws white on black)."""
    rgb = np.asarray(target)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"target must be (H, W, 3), got shape {rgb.shape}")
    return rgb.astype(np.float32).mean(axis=2) > threshold

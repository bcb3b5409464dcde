"""Random horizontal flips of training examples, per task (pure numpy, seeded by the caller).

A flip mirrors the input image and its target together, so the target still describes the
image: depth maps and randomly coloured entity and semantic maps flip plainly; layout-coloured
ones (`encode.colors.scheme: layout`) also mirror their centroid colour; normals also negate
their X component (R -> 255 - R: camera X points right); pose targets swap the colours of
left and right limbs (a mirrored left arm is the person's right arm); point prompts move to
x -> 1 - x.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dicepipe.targets.layout_colors import mirror_layout_target
from dicepipe.targets.pose import COCO_KEYPOINT_NAMES, COCO_SKELETON, LIMB_COLORS

INSTANCE_TASKS = ("entity_segmentation", "semantic_segmentation")
FLIPPABLE = (
    "depth",
    "normal",
    "point_segmentation",
    "entity_segmentation",
    "semantic_segmentation",
    "pose",
)


def mirrored_keypoints() -> tuple[int, ...]:
    """The COCO keypoint index that each keypoint becomes in a mirror image (left <-> right)."""
    names = list(COCO_KEYPOINT_NAMES)
    swapped = [
        n.replace("left_", "@").replace("right_", "left_").replace("@", "right_") for n in names
    ]
    return tuple(names.index(n) for n in swapped)


def mirrored_limbs() -> tuple[int, ...]:
    """The COCO_SKELETON limb that each limb becomes in a mirror image."""
    mirror = mirrored_keypoints()
    limbs = [frozenset(limb) for limb in COCO_SKELETON]
    return tuple(limbs.index(frozenset((mirror[a], mirror[b]))) for a, b in COCO_SKELETON)


def swap_limb_colors(target: np.ndarray) -> np.ndarray:
    """A pose target with every limb recoloured as its mirror limb (keypoints stay red)."""
    out = target.copy()
    for limb, other in enumerate(mirrored_limbs()):
        if limb != other:
            out[np.all(target == LIMB_COLORS[limb], axis=-1)] = LIMB_COLORS[other]
    return out


def flip_target(task: str, target: np.ndarray, layout_floor: int | None = None) -> np.ndarray:
    """The (H, W, 3) uint8 target of `task` for the mirrored image.

    `layout_floor`: the channel floor of layout-coloured instance targets (the shards'
    manifest), None for random colours.
    """
    if task not in FLIPPABLE:
        raise ValueError(f"task {task!r} has no horizontal flip; flippable: {FLIPPABLE}")
    if task in INSTANCE_TASKS and layout_floor is not None:
        return mirror_layout_target(target, layout_floor)
    flipped = np.ascontiguousarray(target[:, ::-1])
    if task == "normal":
        flipped[..., 0] = 255 - flipped[..., 0]
    elif task == "pose":
        flipped = swap_limb_colors(flipped)
    return flipped


def flip_points(points: Sequence[Sequence[float]] | None) -> list[list[float]] | None:
    """Normalised (x, y) prompt points of the mirrored image."""
    if points is None:
        return None
    return [[1.0 - float(x), float(y)] for x, y in points]


def maybe_flip(
    task: str,
    image: np.ndarray,
    target: np.ndarray,
    points: Sequence[Sequence[float]] | None,
    prob: float,
    rng: np.random.Generator,
    layout_floor: int | None = None,
) -> tuple[np.ndarray, np.ndarray, Sequence[Sequence[float]] | None]:
    """(image, target, points), mirrored with probability `prob` when the task allows it
    (`layout_floor` as for `flip_target`).

    One draw from `rng` per call whatever the task, so the stream of draws is the same for any
    mix of tasks.
    """
    draw = rng.random()
    if draw >= prob or task not in FLIPPABLE:
        return image, target, points
    image = np.ascontiguousarray(image[:, ::-1])
    return image, flip_target(task, target, layout_floor), flip_points(points)

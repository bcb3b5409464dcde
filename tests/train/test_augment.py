"""Horizontal flips of training examples: per-task target rules, points, seeded draws."""

from __future__ import annotations

import numpy as np
import pytest

from dicepipe.targets.pose import COCO_SKELETON, LIMB_COLORS, encode_pose
from dicepipe.train.augment import (
    flip_points,
    flip_target,
    maybe_flip,
    mirrored_keypoints,
    mirrored_limbs,
)


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize("task", ["depth", "entity_segmentation", "semantic_segmentation"])
def test_plain_tasks_mirror_their_targets(task):
    target = _image(1)
    assert np.array_equal(flip_target(task, target), target[:, ::-1])


def test_normals_negate_x_when_mirrored():
    target = _image(2)
    flipped = flip_target("normal", target)
    assert np.array_equal(flipped[..., 0], 255 - target[:, ::-1, 0])
    assert np.array_equal(flipped[..., 1:], target[:, ::-1, 1:])


def test_the_left_right_maps_are_involutions_that_swap_sides():
    keypoints, limbs = mirrored_keypoints(), mirrored_limbs()
    assert keypoints[5] == 6 and keypoints[0] == 0  # left shoulder <-> right shoulder; nose
    assert all(keypoints[keypoints[i]] == i for i in range(17))
    assert all(limbs[limbs[i]] == i for i in range(len(COCO_SKELETON)))
    assert limbs[COCO_SKELETON.index((5, 7))] == COCO_SKELETON.index((6, 8))  # upper arms


def test_a_mirrored_pose_target_is_the_mirrored_person_drawn():
    width, height = 64, 48
    rng = np.random.default_rng(3)
    person = np.concatenate([rng.uniform(8, 40, (17, 2)), np.full((17, 1), 2.0)], axis=1)
    mirrored = person[list(mirrored_keypoints())].copy()  # the person's left is now its right
    mirrored[:, 0] = width - 1 - mirrored[:, 0]
    drawn = flip_target("pose", encode_pose(person, height, width, thickness=1, radius=1))
    expected = encode_pose(mirrored, height, width, thickness=1, radius=1)
    # Lines of a mirrored drawing can differ by rounding on a few pixels; colours must match.
    agree = np.all(drawn == expected, axis=-1)
    assert agree.mean() > 0.97
    limb = COCO_SKELETON.index((5, 7))  # left upper arm colour now on the right upper arm
    other = COCO_SKELETON.index((6, 8))
    assert np.all(drawn == LIMB_COLORS[limb], axis=-1).sum() == pytest.approx(
        np.all(expected == LIMB_COLORS[limb], axis=-1).sum(), abs=3
    )
    assert other != limb


def test_points_move_to_one_minus_x():
    assert flip_points([[0.25, 0.5], [1.0, 0.0]]) == [[0.75, 0.5], [0.0, 0.0]]
    assert flip_points(None) is None


def test_maybe_flip_flips_image_target_and_points_together():
    image, target = _image(4), _image(5)
    rng = np.random.default_rng(0)
    flipped = maybe_flip("point_segmentation", image, target, [[0.1, 0.2]], 1.0, rng)
    assert np.array_equal(flipped[0], image[:, ::-1])
    assert np.array_equal(flipped[1], target[:, ::-1])
    assert flipped[2] == [[0.9, 0.2]]
    kept = maybe_flip("depth", image, target, None, 0.0, np.random.default_rng(0))
    assert kept[0] is image and kept[1] is target


def test_the_draws_are_seeded_and_happen_at_the_given_rate():
    def flips(seed: int) -> list[bool]:
        rng = np.random.default_rng(seed)
        image = _image()
        return [
            not np.array_equal(maybe_flip("depth", image, image, None, 0.5, rng)[0], image)
            for _ in range(400)
        ]

    assert flips(7) == flips(7)
    assert 0.4 < np.mean(flips(7)) < 0.6


def test_an_unknown_task_has_no_flip():
    with pytest.raises(ValueError, match="task 'highlight' has no horizontal flip"):
        flip_target("highlight", _image())

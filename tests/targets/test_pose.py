import numpy as np
import pytest

from dicepipe.targets.pose import (
    COCO_KEYPOINT_NAMES,
    COCO_SKELETON,
    KEYPOINT_COLOR,
    LIMB_COLORS,
    encode_pose,
)


def _person() -> np.ndarray:
    rng = np.random.default_rng(0)
    kps = np.zeros((1, 17, 3))
    kps[0, :, 0] = rng.uniform(10, 90, 17)
    kps[0, :, 1] = rng.uniform(10, 70, 17)
    kps[0, :, 2] = 2
    kps[0, 3, 2] = 0  # left ear not labelled
    kps[0, 4, 2] = 1  # right ear labelled, occluded: still drawn
    return kps


def test_constants():
    assert len(COCO_KEYPOINT_NAMES) == 17 and COCO_KEYPOINT_NAMES[0] == "nose"
    assert len(COCO_SKELETON) == 19 == len(LIMB_COLORS)
    assert all(0 <= a < 17 and 0 <= b < 17 for a, b in COCO_SKELETON)
    limbs = np.array(LIMB_COLORS, dtype=np.float64)
    assert np.linalg.norm(limbs - KEYPOINT_COLOR, axis=1).min() >= 170
    assert len(set(LIMB_COLORS)) == 19 and np.linalg.norm(limbs, axis=1).min() > 200


def test_red_discs_exact_on_top_and_only_known_colours():
    kps = _person()
    target = encode_pose(kps, 80, 100)
    assert target.shape == (80, 100, 3) and target.dtype == np.uint8
    for j in range(17):
        x, y = (int(np.floor(v + 0.5)) for v in kps[0, j, :2])
        if j == 3:
            continue
        assert target[y, x].tolist() == [255, 0, 0]
        assert target[y - 3, x].tolist() == [255, 0, 0]  # radius 4 disc, not a limb
    allowed = {(0, 0, 0), KEYPOINT_COLOR, *LIMB_COLORS}
    assert {tuple(c) for c in np.unique(target.reshape(-1, 3), axis=0)} <= allowed
    assert (np.all(target == KEYPOINT_COLOR, axis=2)).sum() >= 14 * 40


def test_invisible_keypoint_and_its_limbs_are_not_drawn():
    kps = np.zeros((1, 17, 3))
    kps[0, :, :2] = [50, 40]
    kps[0, 5] = [20, 20, 2]
    kps[0, 6] = [80, 20, 0]  # shoulder-to-shoulder limb must not appear
    target = encode_pose(kps, 80, 100)
    assert not target[20, 40:70].any()
    assert not target.any(axis=2)[:, 25:].any()  # everything else has v = 0
    assert target[20, 20].tolist() == [255, 0, 0]


def test_single_person_shape_and_determinism():
    kps = _person()
    a = encode_pose(kps[0], 80, 100, radius=2, thickness=1)
    assert a.tobytes() == encode_pose(kps, 80, 100, radius=2, thickness=1).tobytes()
    assert (
        np.all(a == KEYPOINT_COLOR, axis=2).sum()
        < np.all(encode_pose(kps, 80, 100) == KEYPOINT_COLOR, axis=2).sum()
    )


def test_errors():
    with pytest.raises(ValueError, match="17, 3"):
        encode_pose(np.zeros((2, 16, 3)), 10, 10)
    with pytest.raises(ValueError, match="positive"):
        encode_pose(np.zeros((1, 17, 3)), 0, 10)
    with pytest.raises(ValueError, match="numeric"):
        encode_pose(np.zeros((1, 17, 3), dtype=object), 10, 10)

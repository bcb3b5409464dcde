import io

import numpy as np
import pytest
from PIL import Image

from dicepipe.targets.decode_pose import (
    PoseDecodeParams,
    decode_keypoints,
    disc_centres,
    keypoints_to_coco,
)
from dicepipe.targets.pose import encode_pose

# COCO-17 layout in units of person height (x to the person's left, y down).
TEMPLATE = np.array(
    [(0, 0.06), (0.025, 0.04), (-0.025, 0.04), (0.05, 0.05), (-0.05, 0.05), (0.11, 0.18),
     (-0.11, 0.18), (0.15, 0.33), (-0.15, 0.33), (0.17, 0.47), (-0.17, 0.47), (0.08, 0.52),
     (-0.08, 0.52), (0.09, 0.73), (-0.09, 0.73), (0.09, 0.95), (-0.09, 0.95)]
)  # fmt: skip


def _people(seed: int, size: int = 512) -> np.ndarray:
    """Two people side by side, 300-450 px tall, ~85% of keypoints labelled."""
    rng = np.random.default_rng(seed)
    out = []
    for cx in (0.27 * size, 0.73 * size):
        h = rng.uniform(300, 450)
        xy = TEMPLATE * h + [cx, rng.uniform(0, size - h)] + rng.normal(0, 2, (17, 2))
        out.append(np.column_stack([xy, np.where(rng.random(17) < 0.85, 2, 0)]))
    return np.array(out)


def _degrade(target: np.ndarray, kind: str, seed: int) -> np.ndarray:
    if kind == "noise":
        noise = np.random.default_rng(seed).normal(0, 10, target.shape)
        return np.clip(target + noise, 0, 255).astype(np.uint8)
    if kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(target).save(buf, "JPEG", quality=90)
        return np.array(Image.open(buf))
    return target


@pytest.mark.parametrize("kind", ["clean", "noise", "jpeg"])
@pytest.mark.parametrize("seed", range(6))
def test_round_trip_within_two_pixels(seed, kind):
    kps = _people(seed)
    rgb = _degrade(encode_pose(kps, 512, 512), kind, seed)
    pred = decode_keypoints(rgb, kps)
    assert pred.dtype == np.float32 and pred.shape[1] == 3
    coco = keypoints_to_coco(pred, kps)
    labelled = kps[..., 2] > 0
    assert (coco[..., 2] > 0).tolist() == labelled.tolist()
    err = np.hypot(*(coco[..., :2] - kps[..., :2]).transpose(2, 0, 1))[labelled]
    assert err.max() <= 2.0
    assert len(pred) == labelled.sum()


def test_clean_disc_centres_are_the_rounded_keypoints():
    kps = np.zeros((1, 17, 3))
    kps[0, :, 0] = 20 + 25 * np.arange(17) + 0.3
    kps[0, :, 1] = 50.6
    kps[0, :, 2] = 2
    centres = disc_centres(encode_pose(kps, 100, 460))
    assert centres.tolist() == [[20.0 + 25 * i, 51.0] for i in range(17)]


def test_overlapping_discs_are_split():
    kps = np.zeros((1, 17, 3))
    kps[0, 9] = [40, 40, 2]  # clasped hands: wrists 6 px apart, discs of radius 4 overlap
    kps[0, 10] = [46, 40, 2]
    kps[0, 0] = [80, 20, 2]  # an isolated disc gives the disc area
    pred = decode_keypoints(encode_pose(kps, 64, 100), kps)
    assert len(pred) == 3
    by_type = {int(t): (x, y) for x, y, t in pred}
    assert set(by_type) == {0, 9, 10}
    assert np.hypot(by_type[9][0] - 40, by_type[9][1] - 40) <= 1.5
    assert np.hypot(by_type[10][0] - 46, by_type[10][1] - 40) <= 1.5


def test_only_points_close_to_gt_are_kept():
    # Algorithm 1's listing skips points with d_min < xi; the text keeps them. We keep them.
    kps = np.zeros((1, 17, 3))
    kps[0, 5] = [30, 30, 2]
    rgb = encode_pose(kps, 64, 64)
    assert decode_keypoints(rgb, kps).tolist() == [[30.0, 30.0, 5.0]]
    far_gt = kps.copy()
    far_gt[0, 5, :2] = [50, 50]
    assert decode_keypoints(rgb, far_gt).shape == (0, 3)
    near = decode_keypoints(rgb, far_gt, PoseDecodeParams(distance_threshold=40))
    assert near.tolist() == [[30.0, 30.0, 5.0]]
    unlabelled = kps.copy()
    unlabelled[..., 2] = 0
    assert decode_keypoints(rgb, unlabelled).shape == (0, 3)


def test_limbs_are_not_keypoints():
    kps = np.zeros((1, 17, 3))
    kps[0, 5], kps[0, 7] = [10, 10, 2], [50, 50, 2]
    rgb = encode_pose(kps, 64, 64)
    rgb[np.all(rgb == (255, 0, 0), axis=2)] = 0  # remove the discs, keep the limb
    assert disc_centres(rgb).shape == (0, 2)


def test_keypoints_to_coco_picks_nearest_person():
    gt = np.zeros((2, 17, 3))
    gt[0, 0], gt[1, 0] = [10, 10, 2], [50, 50, 2]
    pred = np.array([[49, 51, 0], [11, 10, 0], [14, 10, 0], [0, 0, 3]], dtype=np.float32)
    coco = keypoints_to_coco(pred, gt)
    assert coco.shape == (2, 17, 3)
    assert coco[0, 0].tolist() == [11, 10, 2] and coco[1, 0].tolist() == [49, 51, 2]
    assert not coco[:, 1:].any()


def test_errors():
    with pytest.raises(ValueError, match="uint8"):
        decode_keypoints(np.zeros((8, 8, 3)), np.zeros((1, 17, 3)))
    with pytest.raises(ValueError, match="gt_keypoints"):
        decode_keypoints(np.zeros((8, 8, 3), np.uint8), np.zeros((1, 16, 3)))
    with pytest.raises(ValueError, match="min_area"):
        PoseDecodeParams(min_area=0)

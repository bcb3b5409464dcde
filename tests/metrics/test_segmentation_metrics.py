"""Point-prompted segmentation IoU and mIoU against hand-computed values."""

import numpy as np
import pytest

from dicepipe.metrics.segmentation import binarize, mask_iou, point_prompt_miou


def _box(top, left, height, width, shape=(10, 10)):
    mask = np.zeros(shape, bool)
    mask[top : top + height, left : left + width] = True
    return mask


def test_iou_of_thresholded_predictions():
    gt = _box(0, 0, 4, 4)  # 16 pixels
    assert mask_iou(gt, gt) == 1.0
    assert mask_iou(_box(0, 0, 4, 2), gt) == pytest.approx(8 / 16)
    assert mask_iou(_box(2, 2, 4, 4), gt) == pytest.approx(4 / 28)
    probabilities = np.where(gt, 0.9, 0.2)
    assert mask_iou(probabilities, gt.astype(np.uint8)) == 1.0
    assert mask_iou(probabilities, gt, threshold=0.95) == 0.0
    np.testing.assert_array_equal(binarize(np.array([-1.0, 0.5, 2.0]), 0.0), [False, True, True])


def test_miou_grouped_by_number_of_points():
    gt = _box(0, 0, 4, 4)
    preds = [gt, _box(0, 0, 4, 2), gt, _box(8, 8, 2, 2)]
    m = point_prompt_miou(preds, [gt] * 4, n_points=[1, 1, 5, 5])
    assert m["miou_1pt"] == pytest.approx(0.75) and m["miou_5pt"] == pytest.approx(0.5)
    assert m["count_1pt"] == m["count_5pt"] == 2
    assert m["miou"] == pytest.approx(0.625) and m["count"] == 4
    assert point_prompt_miou([gt], [gt], n_points=1) == {
        "miou": 1.0,
        "count": 1,
        "miou_1pt": 1.0,
        "count_1pt": 1,
    }


def test_errors():
    gt = _box(0, 0, 4, 4)
    with pytest.raises(ValueError, match="empty"):
        mask_iou(gt, np.zeros_like(gt))
    with pytest.raises(ValueError, match="binary"):
        mask_iou(gt, gt * 2)
    with pytest.raises(ValueError, match="matching"):
        mask_iou(gt[:5], gt)
    with pytest.raises(ValueError, match="point counts"):
        point_prompt_miou([gt], [gt], n_points=[1, 5])
    with pytest.raises(ValueError, match="at least one point"):
        point_prompt_miou([gt], [gt], n_points=0)

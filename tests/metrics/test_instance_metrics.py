"""Class-agnostic COCO mask AP/AR against hand-computed values and pycocotools' own route."""

import io
from contextlib import redirect_stdout

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dicepipe.metrics.instances import SEGM_STATS, mask_ap

SIZE = (200, 200)


def _box(top, left, height, width, shape=SIZE):
    mask = np.zeros(shape, bool)
    mask[top : top + height, left : left + width] = True
    return mask


# small (< 32^2), medium and large (> 96^2) objects
GTS = [_box(0, 0, 10, 10), _box(20, 20, 40, 40), _box(70, 70, 120, 120)]


def test_perfect_prediction_scores_one_everywhere():
    m = mask_ap([GTS], [[0.9, 0.8, 0.7]], [GTS], [SIZE])
    assert set(m) == set(SEGM_STATS)
    assert m.pop("AR_1") == pytest.approx(1 / 3)  # one detection finds one of three objects
    assert all(value == pytest.approx(1.0) for value in m.values())


def test_empty_predictions_score_zero():
    m = mask_ap([[]], [[]], [GTS], [SIZE])
    assert m["AP"] == 0.0 and m["AR_100"] == 0.0 and m["AR_large"] == 0.0
    none_at_all = mask_ap([np.zeros((0, *SIZE), bool), []], [[], []], [GTS, GTS], [SIZE, SIZE])
    assert none_at_all["AP"] == 0.0


def test_hand_computed_iou_of_0_62():
    gt = _box(0, 0, 10, 10)
    pred = np.zeros(SIZE, np.uint8)
    pred[:6, :10] = 1
    pred[6, :2] = 1  # 62 of the gt's 100 pixels: IoU 0.62, matched at 0.50, 0.55, 0.60
    m = mask_ap([[pred]], [[1.0]], [[gt]], [SIZE])
    assert m["AP50"] == pytest.approx(1.0) and m["AP75"] == 0.0
    assert m["AP"] == pytest.approx(0.3) and m["AR_100"] == pytest.approx(0.3)
    assert m["AP_small"] == pytest.approx(0.3) and m["AP_large"] == -1.0  # no large gt


def test_matches_pycocotools_load_res_route():
    rng = np.random.default_rng(3)
    preds, scores = [], []
    for gt in GTS:
        rows, cols = np.nonzero(gt)
        shift = rng.integers(0, 8, size=2)
        preds.append(_box(rows.min() + shift[0], cols.min() + shift[1], *np.ptp([rows, cols], 1)))
    preds.append(_box(150, 0, 30, 30))  # a false positive
    scores = [0.9, 0.6, 0.8, 0.95]
    ours = mask_ap([preds], [scores], [GTS], [SIZE])

    gt_coco = COCO()
    gt_coco.dataset = {
        "images": [{"id": 7, "height": SIZE[0], "width": SIZE[1]}],
        "categories": [{"id": 3}],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 7,
                "category_id": 3,
                "iscrowd": 0,
                "area": float(m.sum()),
                "bbox": list(mask_utils.toBbox(_rle(m))),
                "segmentation": _rle(m),
            }
            for i, m in enumerate(GTS)
        ],
    }
    with redirect_stdout(io.StringIO()):
        gt_coco.createIndex()
        dt_coco = gt_coco.loadRes(
            [
                {"image_id": 7, "category_id": 3, "segmentation": _rle(m), "score": s}
                for m, s in zip(preds, scores, strict=True)
            ]
        )
        evaluator = COCOeval(gt_coco, dt_coco, "segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    np.testing.assert_allclose([ours[k] for k in SEGM_STATS], evaluator.stats)
    assert 0.0 < ours["AP"] < 1.0


def _rle(mask):
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def test_inputs_are_validated_before_native_code():
    with pytest.raises(ValueError, match="image 0 predicted mask 0: mask shape"):
        mask_ap([[np.ones((5, 5), bool)]], [[1.0]], [GTS], [SIZE])
    with pytest.raises(ValueError, match="binary"):
        mask_ap([[GTS[0] * 3]], [[1.0]], [GTS], [SIZE])
    with pytest.raises(ValueError, match="scores"):
        mask_ap([[GTS[0]]], [[1.0, 0.5]], [GTS], [SIZE])
    with pytest.raises(ValueError, match="finite"):
        mask_ap([[GTS[0]]], [[np.nan]], [GTS], [SIZE])
    with pytest.raises(ValueError, match="pred_masks: got 2 entries for 1 images"):
        mask_ap([[], []], [[]], [GTS], [SIZE])
    with pytest.raises(ValueError, match="size"):
        mask_ap([[]], [[]], [[]], [(0, 5)])
    with pytest.raises(ValueError, match="gt areas"):
        mask_ap([[]], [[]], [GTS], [SIZE], gt_areas=[[1.0]])

"""COCO keypoint AP against hand-computed OKS and pycocotools' own route."""

import io
from contextlib import redirect_stdout

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dicepipe.metrics.keypoints import KEYPOINT_STATS, keypoint_ap


def _person(x0, y0, rng, visible=2):
    xy = np.stack([x0 + rng.uniform(0, 60, 17), y0 + rng.uniform(0, 120, 17)], axis=1)
    return np.concatenate([xy, np.full((17, 1), float(visible))], axis=1)


RNG = np.random.default_rng(0)
GT = np.stack([_person(10, 10, RNG), _person(200, 50, RNG)])
AREAS = [5000.0, 12000.0]  # medium and large


def test_perfect_prediction_scores_one():
    m = keypoint_ap([GT], [[0.9, 0.8]], [GT], [AREAS])
    assert set(m) == set(KEYPOINT_STATS)
    assert all(value == pytest.approx(1.0) for value in m.values())


def test_empty_predictions_score_zero():
    m = keypoint_ap([np.zeros((0, 17, 3))], [[]], [GT], [AREAS])
    assert m["AP"] == 0.0 and m["AR"] == 0.0


def test_hand_computed_oks_with_one_custom_keypoint():
    sigma, area, oks = 0.1, 2000.0, 0.72  # medium-sized person
    distance = np.sqrt(-np.log(oks) * 2 * area * (2 * sigma) ** 2)
    gt = np.array([[[50.0, 50.0, 2.0]]])
    pred = np.array([[[50.0 + distance, 50.0, 1.0]]])
    m = keypoint_ap([pred], [[1.0]], [gt], [[area]], sigmas=np.array([sigma]))
    assert m["AP"] == pytest.approx(0.5)  # matched at OKS 0.50 ... 0.70, five of ten
    assert m["AP50"] == pytest.approx(1.0) and m["AP75"] == 0.0
    assert m["AP_medium"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\(people, 17, 3\)"):
        keypoint_ap([pred], [[1.0]], [gt], [[area]])  # one keypoint needs its sigmas


def test_matches_pycocotools_load_res_route():
    pred = GT.copy()
    pred[0, :, :2] += RNG.normal(0, 3, (17, 2))
    pred[1, :, :2] += RNG.normal(0, 9, (17, 2))
    extra = _person(100, 300, RNG)  # a false positive
    preds = np.concatenate([pred, extra[None]])
    scores = [0.5, 0.9, 0.7]
    gt = GT.copy()
    gt[1, :5, 2] = 0  # five unlabelled keypoints
    ours = keypoint_ap([preds], [scores], [gt], [AREAS])

    boxes = [_extent(p[p[:, 2] > 0]) for p in gt]
    coco = COCO()
    coco.dataset = {
        "images": [{"id": 4}],
        "categories": [{"id": 1}],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 4,
                "category_id": 1,
                "iscrowd": 0,
                "area": a,
                "bbox": b,
                "keypoints": p.ravel().tolist(),
                "num_keypoints": int((p[:, 2] > 0).sum()),
            }
            for i, (p, a, b) in enumerate(zip(gt, AREAS, boxes, strict=True))
        ],
    }
    with redirect_stdout(io.StringIO()):
        coco.createIndex()
        results = coco.loadRes(
            [
                {"image_id": 4, "category_id": 1, "keypoints": p.ravel().tolist(), "score": s}
                for p, s in zip(preds, scores, strict=True)
            ]
        )
        evaluator = COCOeval(coco, results, "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    np.testing.assert_allclose([ours[k] for k in KEYPOINT_STATS], evaluator.stats)
    assert 0.0 < ours["AP"] < 1.0


def _extent(points):
    (x0, y0), (x1, y1) = points[:, :2].min(0), points[:, :2].max(0)
    return [x0, y0, x1 - x0, y1 - y0]


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="visibility"):
        bad = GT.copy()
        bad[0, 0, 2] = 3
        keypoint_ap([GT], [[1, 1]], [bad], [AREAS])
    with pytest.raises(ValueError, match="finite"):
        bad = GT.copy()
        bad[0, 0, 0] = np.nan
        keypoint_ap([bad], [[1, 1]], [GT], [AREAS])
    with pytest.raises(ValueError, match="gt areas"):
        keypoint_ap([GT], [[1, 1]], [GT], [[1.0]])
    with pytest.raises(ValueError, match="scores"):
        keypoint_ap([GT], [[1]], [GT], [AREAS])
    with pytest.raises(ValueError, match="sigmas"):
        keypoint_ap([GT], [[1, 1]], [GT], [AREAS], sigmas=np.array([-1.0] * 17))


def test_default_sigmas_are_cocoevals():
    from pycocotools.cocoeval import Params

    from dicepipe.metrics.keypoints import COCO_KEYPOINT_SIGMAS

    np.testing.assert_array_equal(COCO_KEYPOINT_SIGMAS, Params("keypoints").kpt_oks_sigmas)

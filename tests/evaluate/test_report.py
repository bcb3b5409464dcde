"""The evaluation report's flags: tasks whose predictions decode to nothing."""

from __future__ import annotations

import numpy as np

from dicepipe.evaluate.report import empty_warnings
from dicepipe.evaluate.scoring import is_flat


def test_a_task_with_mostly_empty_predictions_gets_a_warning_line():
    metrics = {
        "heldout": {
            "point_segmentation": {"model": {"empty_predictions": 1.0}, "baseline": {}},
            "depth": {"model": {"empty_predictions": 0.25}, "baseline": {}},
            "pose": {"model": {"empty_predictions": None}, "baseline": {}},
        }
    }
    assert empty_warnings(metrics) == [
        "warning: heldout/point_segmentation: 100% of the model's predictions decode to "
        "nothing (flat map, empty mask, no entity or keypoint)"
    ]
    assert len(empty_warnings(metrics, threshold=0.2)) == 2


def test_a_flat_map_is_one_colour_within_two_levels():
    field = np.full((8, 8, 3), (90, 160, 70), np.uint8)
    assert is_flat(field)
    field[0, 0, 1] += 2
    assert is_flat(field)
    field[0, 0, 1] += 1
    assert not is_flat(field)

"""The COCO rules shared by sampling and evaluation: values, reasons and messages."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from dicepipe.imageio import rle_mask
from dicepipe.records import ItemError
from dicepipe.sources import coco_checks as checks

SQUARE = [1.0, 1.0, 6.0, 1.0, 6.0, 4.0, 1.0, 4.0]


def _annotation(**extra):
    return {"id": 7, "category_id": 1, "bbox": [1, 1, 5, 3], "segmentation": [SQUARE], **extra}


def _fault(function, *args):
    with pytest.raises(ItemError) as info:
        function(*args)
    return info.value.reason, info.value.message


def test_a_polygon_annotation_becomes_a_compressed_rle_with_its_runs():
    record, runs = checks.check_annotation(_annotation(area=15.0), 6, 8, {})
    expected = mask_utils.merge(mask_utils.frPyObjects([SQUARE], 6, 8))
    assert record["segmentation"] == {"size": [6, 8], "counts": expected["counts"].decode()}
    np.testing.assert_array_equal(rle_mask(runs, 6, 8), mask_utils.decode(expected).astype(bool))
    assert record["bbox"] == [1.0, 1.0, 5.0, 3.0] and record["iscrowd"] == 0


def test_uncompressed_rle_is_converted_and_checked_to_cover_the_image():
    counts, runs = checks.segmentation_rle(
        {"segmentation": {"size": [2, 3], "counts": [1, 4, 1]}}, 7, 2, 3
    )
    assert (
        runs.tolist() == [1, 4, 1]
        and counts
        == mask_utils.frPyObjects({"size": [2, 3], "counts": [1, 4, 1]}, 2, 3)["counts"].decode()
    )
    short = {"segmentation": {"size": [2, 3], "counts": [1, 4]}}
    assert _fault(checks.segmentation_rle, short, 7, 2, 3) == (
        "invalid_rle",
        "annotation 7: RLE 0 does not cover 6 pixels",
    )


@pytest.mark.parametrize(
    ("extra", "reason", "message"),
    [
        ({"id": 1.5}, "bad_annotation", "annotation id 1.5, category 1: both must be integers"),
        ({"bbox": [0, 0, 1]}, "bad_annotation", "annotation 7: iscrowd None, bbox [0, 0, 1]"),
        ({"area": -1}, "bad_annotation", "annotation 7: area -1 is not >= 0"),
        ({"area": None}, "bad_annotation", "annotation 7: area None is not >= 0"),
        (
            {"segmentation": [[0, 0, 1, 1]]},
            "polygon_too_few_points",
            "annotation 7 polygon 0 has 2 points, needs 3",
        ),
        (
            {"keypoints": [1, 1, 2, 99, 1, 2]},
            "keypoints_out_of_bounds",
            "annotation 7 keypoints: (99, 1) is far outside the 8x6 image",
        ),
        ({"keypoints": [1, 1, 3]}, "bad_keypoints", "annotation 7 keypoints: visibility flags [3]"),
    ],
)
def test_faults_are_item_errors_naming_them(extra, reason, message):
    assert _fault(checks.check_annotation, _annotation(**extra), 6, 8, {}) == (reason, message)


def test_keypoints_must_match_their_category_and_each_other():
    categories = {1: {"id": 1, "keypoints": ["nose", "eye"]}}
    annotation = _annotation(keypoints=[1, 1, 2])
    assert _fault(checks.check_annotation, annotation, 6, 8, categories) == (
        "bad_keypoints",
        "annotation 7 keypoints: 1 keypoints, the category has 2",
    )
    people = [{"id": 1, "keypoints": [0.0] * 3}, {"id": 2, "keypoints": [0.0] * 6}]
    assert _fault(checks.check_annotation_set, people) == (
        "keypoint_count_mismatch",
        "people with 1, 2 keypoints in one image",
    )
    assert _fault(checks.check_annotation_set, [people[0], people[0]])[0] == "duplicate_id"


def test_image_records_need_a_positive_size_within_the_pixel_limit():
    assert checks.image_size({"width": 8.0, "height": 6}, 100) == (8, 6)
    assert _fault(checks.image_size, {"width": 0, "height": 6}, 100)[0] == "bad_image_record"
    assert _fault(checks.image_size, {"width": 20, "height": 6}, 100) == (
        "too_many_pixels",
        "declared size 20x6 exceeds the limit of 100 pixels",
    )

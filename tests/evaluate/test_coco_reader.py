"""COCO val reader: instances and keypoints JSON via pycocotools, images from a folder/zip."""

import json
import re

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from dicepipe.evaluate.benchmarks import BenchmarkReadError, read_coco
from dicepipe.metrics.instances import mask_ap
from dicepipe.metrics.keypoints import keypoint_ap
from dicepipe.records import ItemError
from dicepipe.sources import common
from dicepipe.sources.coco_checks import check_annotation, segmentation_rle
from tests.evaluate.fixtures import gradient_rgb, png_bytes, write_archive

IMAGES = [
    {"id": 139, "file_name": "000000000139.jpg", "height": 40, "width": 50},
    {"id": 285, "file_name": "000000000285.jpg", "height": 30, "width": 30},
]
CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]


def _blob():
    mask = np.zeros((40, 50), np.uint8)
    mask[5:25, 30:45] = 1
    mask[8, 31] = 0
    return mask


def _runs(mask):
    flat = np.asarray(mask, np.uint8).ravel(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return runs if flat[0] == 0 else [0, *runs]


def _keypoints():
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.uniform(5, 35, (17, 2)), np.full((17, 1), 2.0)], axis=1)
    points[3] = 0.0  # an unlabelled keypoint
    return points


def _write(tmp_path, annotations_override=None):
    compressed = mask_utils.encode(np.asfortranarray(_blob()))
    crowd = np.zeros((40, 50), np.uint8)
    crowd[30:38, 0:10] = 1
    annotations = [
        {
            "id": 1,
            "image_id": 139,
            "category_id": 1,
            "iscrowd": 0,
            "area": 100.0,
            "bbox": [10, 10, 10, 10],
            "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]],
        },
        {
            "id": 2,
            "image_id": 139,
            "category_id": 3,
            "iscrowd": 0,
            "area": 299.0,
            "bbox": [30, 5, 15, 20],
            "segmentation": {"size": [40, 50], "counts": compressed["counts"].decode()},
        },
        {
            "id": 3,
            "image_id": 139,
            "category_id": 1,
            "iscrowd": 1,
            "area": 80.0,
            "bbox": [0, 30, 10, 8],
            "segmentation": {"size": [40, 50], "counts": _runs(crowd)},
        },
    ]
    if annotations_override is not None:
        annotations = annotations_override
    instances = tmp_path / "instances_val2017.json"
    instances.write_text(
        json.dumps({"images": IMAGES, "annotations": annotations, "categories": CATEGORIES})
    )
    people = [
        {
            "id": 9,
            "image_id": 139,
            "category_id": 1,
            "iscrowd": 0,
            "area": 600.0,
            "bbox": [5, 5, 30, 30],
            "num_keypoints": 16,
            "keypoints": _keypoints().ravel().tolist(),
        }
    ]
    keypoints = tmp_path / "person_keypoints_val2017.json"
    keypoints.write_text(
        json.dumps({"images": IMAGES, "annotations": people, "categories": CATEGORIES[:1]})
    )
    images = {
        f"val2017/{r['file_name']}": png_bytes(gradient_rgb(r["height"], r["width"]))
        for r in IMAGES
    }
    return instances, keypoints, images


def test_instances_and_keypoints_from_a_zip(tmp_path):
    instances, keypoints, images = _write(tmp_path)
    archive = write_archive(tmp_path / "val2017", images, "zip")
    samples = list(read_coco(archive, instances, keypoints, prefix="val2017/"))
    assert [s.image_id for s in samples] == [139, 285]
    first, second = samples
    assert first.benchmark == "coco" and first.rgb.shape == (40, 50, 3)
    assert first.instances.masks.shape == (3, 40, 50)
    np.testing.assert_array_equal(first.instances.masks[1], _blob().astype(bool))
    assert first.instances.masks[2].sum() == 80 and abs(first.instances.masks[0].sum() - 100) < 25
    np.testing.assert_array_equal(first.instances.category_ids, [1, 3, 1])
    np.testing.assert_array_equal(first.instances.iscrowd, [False, False, True])
    np.testing.assert_allclose(first.people.keypoints[0], _keypoints())
    assert first.people.areas.tolist() == [600.0] and first.people.boxes.shape == (1, 4)
    assert second.instances.masks.shape == (0, 30, 30) and second.people.keypoints.shape[0] == 0

    # the readers' output feeds the metrics directly: perfect predictions score 1
    keep = [~s.instances.iscrowd for s in samples]
    gt_masks = [s.instances.masks[k] for s, k in zip(samples, keep, strict=True)]
    scores = [np.ones(len(m)) for m in gt_masks]
    ap = mask_ap(
        gt_masks,
        scores,
        gt_masks,
        [s.rgb.shape[:2] for s in samples],
        gt_areas=[s.instances.areas[k] for s, k in zip(samples, keep, strict=True)],
    )
    assert ap["AP"] == pytest.approx(1.0)
    people = [s.people for s in samples]
    kp = keypoint_ap(
        [p.keypoints for p in people],
        [np.ones(len(p.areas)) for p in people],
        [p.keypoints for p in people],
        [p.areas for p in people],
        gt_boxes=[p.boxes for p in people],
    )
    assert kp["AP"] == pytest.approx(1.0)


def test_folder_selected_ids_and_limit(tmp_path):
    instances, _, images = _write(tmp_path)
    folder = write_archive(tmp_path / "coco", images, "folder")
    samples = list(read_coco(folder / "val2017", instances, image_ids=[285]))
    assert [s.name for s in samples] == ["000000000285.jpg"] and samples[0].people is None
    assert len(list(read_coco(folder, instances, prefix="val2017/", limit=1))) == 1
    with pytest.raises(BenchmarkReadError, match="not in every annotations file"):
        next(read_coco(folder, instances, image_ids=[1]))


def test_bad_annotations_are_rejected_before_decoding(tmp_path):
    bad_rle = [
        {
            "id": 1,
            "image_id": 139,
            "category_id": 1,
            "iscrowd": 1,
            "area": 1.0,
            "bbox": [0, 0, 1, 1],
            "segmentation": {"size": [40, 50], "counts": [5, 10**6]},
        }
    ]
    instances, _, images = _write(tmp_path, bad_rle)
    folder = write_archive(tmp_path / "coco", images, "folder")
    with pytest.raises(
        BenchmarkReadError, match="000000000139.jpg: annotation 1: RLE 0 does not cover 2000 pix"
    ):
        next(read_coco(folder, instances, prefix="val2017/"))


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        ({"size": [4, 4], "counts": [16]}, "annotation 1 has RLE size [4, 4]"),
        ([[0, 0, 1, float("nan"), 2, 2]], "annotation 1 polygon 0 is not finite x, y pairs"),
        ([[0, 0, 1, 1e30, 2, 2]], "annotation 1 polygon 0 spans x 0..2, y 0..1e+30, far outside"),
        ([[0, 0, 1, 1]], "annotation 1 polygon 0 has 2 points, needs 3"),
        ({"size": [40, 50], "counts": "0P"}, "annotation 1: RLE string has bad characters or ends"),
    ],
)
def test_evaluation_rejects_what_sampling_quarantines(tmp_path, segmentation, message):
    annotation = {"id": 1, "image_id": 139, "category_id": 1, "bbox": [0, 0, 1, 1]}
    annotation["segmentation"] = segmentation
    with pytest.raises(ItemError, match=re.escape(message)):
        check_annotation(annotation, 40, 50, {})  # the sampling stage's check
    instances, _, images = _write(tmp_path, [annotation])
    folder = write_archive(tmp_path / "coco", images, "folder")
    with pytest.raises(BenchmarkReadError, match=re.escape(f"000000000139.jpg: {message}")):
        next(read_coco(folder, instances, prefix="val2017/"))


def test_image_size_must_match_its_record(tmp_path):
    instances, _, images = _write(tmp_path)
    images["val2017/000000000139.jpg"] = png_bytes(gradient_rgb(40, 40))
    folder = write_archive(tmp_path / "coco", images, "folder")
    with pytest.raises(BenchmarkReadError, match=r"000000000139.jpg: the image has shape"):
        next(read_coco(folder, instances, prefix="val2017/"))
    (tmp_path / "broken.json").write_text('{"images": [{"id": 1}], "annotations": []}')
    with pytest.raises(BenchmarkReadError, match="not COCO annotations"):
        next(read_coco(folder, tmp_path / "broken.json"))


def test_each_rle_string_is_decoded_once_and_never_by_pycocotools(tmp_path, monkeypatch):
    instances, _, images = _write(tmp_path)
    folder = write_archive(tmp_path / "coco", images, "folder")
    decoded = []
    real = common.rle_runs_from_strings
    monkeypatch.setattr(
        common, "rle_runs_from_strings", lambda texts, n: decoded.extend(texts) or real(texts, n)
    )
    monkeypatch.setattr(mask_utils, "decode", None)  # a call would fail
    first = next(read_coco(folder, instances, prefix="val2017/"))
    compressed = mask_utils.encode(np.asfortranarray(_blob()))["counts"]
    assert decoded.count(compressed) == 1  # the string annotation; the polygon's own RLE too
    np.testing.assert_array_equal(first.instances.masks[1], _blob().astype(bool))


def test_compressed_rle_runs_match_pycocotools():
    rng = np.random.default_rng(0)
    mask = (rng.random((37, 23)) > 0.6).astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(mask))
    annotation = {"segmentation": {"size": [37, 23], "counts": rle["counts"].decode()}}
    counts, runs = segmentation_rle(annotation, 1, 37, 23)
    assert counts == rle["counts"].decode() and runs.tolist() == _runs(mask)

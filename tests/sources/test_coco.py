import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from dicepipe.imageio import encode_jpeg
from dicepipe.params.sample import CocoParams, SampleParams
from dicepipe.records import ItemError
from dicepipe.sources.coco import iter_unit, plan_units
from dicepipe.sources.coco_checks import check_relative_path
from dicepipe.sources.common import collect

H, W = 40, 60
KEYPOINT_NAMES = ["nose", "left_eye", "right_eye"]


def _person(ann_id: int, image_id: int, polygon: list[float], **extra) -> dict:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "segmentation": [polygon],
        "area": 100.0,
        "bbox": [10.0, 5.0, 20.0, 20.0],
        "iscrowd": 0,
        "keypoints": [15, 8, 2, 12, 6, 1, 0, 0, 0],
        "num_keypoints": 2,
        **extra,
    }


def _image(image_id: int, width: int = W, height: int = H) -> dict:
    return {"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": width, "height": height}


def _write(tmp_path, images: list[dict], annotations: list[dict]) -> CocoParams:
    (tmp_path / "images").mkdir(exist_ok=True)
    for record in images:
        name = record["file_name"]
        if isinstance(name, str) and "/" not in name and name != "missing.jpg":
            pixels = np.full((H, W, 3), 40 + record["id"], np.uint8)
            (tmp_path / "images" / name).write_bytes(encode_jpeg(pixels))
    document = {
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": 1, "name": "person", "keypoints": KEYPOINT_NAMES, "skeleton": [[1, 2], [1, 3]]}
        ],
    }
    (tmp_path / "person_keypoints.json").write_text(json.dumps(document))
    return CocoParams(
        annotations=str(tmp_path / "person_keypoints.json"),
        images=str(tmp_path / "images"),
        n=100,
        block_images=2,
        only_annotated=False,  # images without annotations are selected too: their checks run
    )


def _read(section: CocoParams) -> tuple[list[dict], dict[str, str]]:
    """Rows and quarantine reasons of a plan read whole; the same whether units stream the
    annotations file or read its index (`coco_index`)."""
    units = plan_units(section, seed=0)
    assert all(unit.reader == "coco" and unit.annotations_sha256 for unit in units)
    rows, errors = _outcomes(units)
    index_dir = Path(section.annotations).parent / "index"
    indexed = plan_units(section, seed=0, index_dir=index_dir)
    assert [u.items for u in indexed] == [u.items for u in units]
    assert all(u.index for u in indexed)
    assert _outcomes(indexed) == (rows, errors)
    return rows, errors


def _outcomes(units) -> tuple[list[dict], dict[str, str]]:
    outcomes = [o for unit in units for o in iter_unit(unit, SampleParams(max_pixels=10**6))]
    rows, errors, _ = collect(outcomes)
    assert len(rows) + len(errors) == sum(len(u.items) for u in units)
    return rows, {key: error.reason for key, error in errors}


def test_keypoints_and_masks_are_carried_into_the_row(tmp_path):
    square = [10.0, 5.0, 30.0, 5.0, 30.0, 25.0, 10.0, 25.0]
    section = _write(tmp_path, [_image(1), _image(2)], [_person(100, 1, square)])
    rows, errors = _read(section)
    assert errors == {} and [r["key"] for r in rows] == ["coco/000000000001", "coco/000000000002"]
    (annotation,) = json.loads(rows[0]["annotations"])
    assert json.loads(rows[1]["annotations"]) == []
    assert annotation["keypoints"] == [15.0, 8.0, 2.0, 12.0, 6.0, 1.0, 0.0, 0.0, 0.0]
    assert annotation["num_keypoints"] == 2 and annotation["category_id"] == 1
    rle = dict(annotation["segmentation"], counts=annotation["segmentation"]["counts"].encode())
    mask = mask_utils.decode(rle).astype(bool)
    assert mask.shape == (H, W) and mask[10, 20] and not mask[30, 50]
    assert 350 <= mask.sum() <= 450  # the 20 x 20 square, rasterised
    assert rows[0]["unit"] == "coco-000000" and rows[0]["origin"].endswith("000000000001.jpg")


def test_bad_records_are_quarantined_with_reasons(tmp_path):
    square = [10.0, 5.0, 30.0, 5.0, 30.0, 25.0, 10.0, 25.0]
    images = [
        _image(1),
        _image(2, width=W + 1),  # the JSON's size is not the file's
        {**_image(3), "file_name": "missing.jpg"},
        {**_image(4), "file_name": "../../etc/passwd"},
        _image(5),
        _image(6),
        {"id": 7, "file_name": "000000000007.jpg"},  # no width/height
    ]
    annotations = [
        _person(100, 1, square),
        _person(500, 5, square, keypoints=[1, 2]),  # not x, y, v triples
        {**_person(600, 6, square), "segmentation": {"size": [H, W], "counts": [5, 10**6]}},
    ]
    rows, errors = _read(_write(tmp_path, images, annotations))
    assert [r["key"] for r in rows] == ["coco/000000000001"]
    assert errors == {
        "coco/000000000002": "size_mismatch",
        "coco/000000000003": "missing_file",
        "coco/000000000004": "bad_id",
        "coco/000000000005": "bad_keypoints",
        "coco/000000000006": "invalid_rle",
        "coco/000000000007": "bad_image_record",
    }


def test_unparseable_annotations_file_is_a_clear_error(tmp_path):
    (tmp_path / "broken.json").write_text('{"images": [')
    with pytest.raises(ValueError, match="broken.json"):
        plan_units(CocoParams(annotations=str(tmp_path / "broken.json"), n=3), seed=0)


def test_relative_paths_stay_inside_the_images_root():
    assert check_relative_path("train2017/000000000001.jpg") == "train2017/000000000001.jpg"
    for bad in ("/abs.jpg", "a/../../b.jpg", "", "s3://bucket/x.jpg", "a\\b.jpg", 7):
        with pytest.raises(ItemError):
            check_relative_path(bad)


SQUARE = [10.0, 5.0, 30.0, 5.0, 30.0, 25.0, 10.0, 25.0]


def test_polygons_with_fewer_than_three_points_are_quarantined(tmp_path):
    annotations = [
        _person(100, 1, SQUARE),
        _person(200, 2, [10.0, 5.0, 30.0, 5.0]),  # 2 points: pycocotools would take a bbox
        _person(300, 3, [10.0, 5.0]),  # 1 point: pycocotools raises a bare Exception
        {**_person(400, 4, SQUARE), "segmentation": []},
        _person(500, 5, [10.0, 5.0, 30.0, "x", 30.0, 25.0]),
    ]
    images = [_image(i) for i in range(1, 6)]
    rows, errors = _read(_write(tmp_path, images, annotations))
    assert [r["key"] for r in rows] == ["coco/000000000001"]
    assert errors == {
        "coco/000000000002": "polygon_too_few_points",
        "coco/000000000003": "polygon_too_few_points",
        "coco/000000000004": "polygon_too_few_points",
        "coco/000000000005": "bad_polygon",
    }


ABSURD = """
import json, sys
from dicepipe.params.sample import CocoParams, SampleParams
from dicepipe.sources.coco import iter_unit, plan_units
from dicepipe.sources.common import collect
section = CocoParams(annotations=sys.argv[1], images=sys.argv[2], n=10, block_images=2)
units = plan_units(section, seed=0)
rows, errors, _ = collect(o for u in units for o in iter_unit(u, SampleParams(max_pixels=10**6)))
print(json.dumps({"rows": [r["key"] for r in rows], "errors": {k: e.reason for k, e in errors}}))
"""


def test_absurd_polygon_coordinates_never_reach_pycocotools(tmp_path):
    annotations = [
        _person(100, 1, SQUARE),
        _person(200, 2, [1e9, 1e9, 2e9, 5.0, 30.0, 40.0]),  # pycocotools: SIGSEGV
        _person(300, 3, [10.0, 5.0, float("nan"), 5.0, 30.0, 25.0]),
        _person(400, 4, [10.0, 5.0, 30.0, 5.0, 30.0, -1e12]),
    ]
    section = _write(tmp_path, [_image(i) for i in range(1, 5)], annotations)
    args = [sys.executable, "-c", ABSURD, section.annotations, section.images]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    result = json.loads(done.stdout)
    assert result["rows"] == ["coco/000000000001"]
    assert result["errors"] == {
        "coco/000000000002": "polygon_out_of_bounds",
        "coco/000000000003": "bad_polygon",
        "coco/000000000004": "polygon_out_of_bounds",
    }


def test_keypoints_are_checked_at_sample_time(tmp_path):
    labelled = [15, 8, 2, 12, 6, 1, 0, 0, 0]
    annotations = [
        _person(100, 1, SQUARE, keypoints=labelled, num_keypoints=7),  # count is recomputed
        _person(200, 2, SQUARE, keypoints=labelled[:6]),  # 2 keypoints, the category has 3
        _person(300, 3, SQUARE, keypoints=[1e9, 8, 2, 12, 6, 1, 0, 0, 0]),
        _person(400, 4, SQUARE, keypoints=[15, 8, 7, 12, 6, 1, 0, 0, 0]),  # visibility 7
        _person(500, 5, SQUARE, keypoints=[15, float("inf"), 2, 12, 6, 1, 0, 0, 0]),
        _person(600, 6, SQUARE, keypoints=labelled),
        {**_person(601, 6, SQUARE, keypoints=labelled[:6]), "category_id": 2},
        _person(700, 7, SQUARE, keypoints=labelled),
        _person(700, 7, SQUARE, keypoints=labelled),  # the same annotation id twice
    ]
    section = _write(tmp_path, [_image(i) for i in range(1, 8)], annotations)
    document = json.loads(Path(section.annotations).read_text())
    document["categories"].append({"id": 2, "name": "pair", "keypoints": ["a", "b"]})
    Path(section.annotations).write_text(json.dumps(document))
    rows, errors = _read(section)
    assert [r["key"] for r in rows] == ["coco/000000000001"]
    assert json.loads(rows[0]["annotations"])[0]["num_keypoints"] == 2
    assert errors == {
        "coco/000000000002": "bad_keypoints",
        "coco/000000000003": "keypoints_out_of_bounds",
        "coco/000000000004": "bad_keypoints",
        "coco/000000000005": "bad_keypoints",
        "coco/000000000006": "keypoint_count_mismatch",
        "coco/000000000007": "duplicate_id",
    }


def test_uncompressed_rle_and_declared_sizes(tmp_path):
    mask = np.zeros((H, W), bool)
    mask[3:20, 7:30] = True
    counts = mask.T.reshape(-1).astype(np.int8)
    runs = np.diff(np.concatenate(([0], np.flatnonzero(np.diff(counts)) + 1, [mask.size])))
    uncompressed = {"size": [H, W], "counts": runs.tolist()}
    annotations = [
        {**_person(100, 1, SQUARE), "segmentation": uncompressed},
        {**_person(200, 2, SQUARE), "segmentation": {"size": [H, W + 1], "counts": [H * W]}},
    ]
    images = [_image(1), _image(2), {**_image(3), "width": -5}, {**_image(4), "width": 10**7}]
    images += [{**_image(5), "width": "wide"}, _image(6), {**_image(6), "file_name": "x.jpg"}]
    rows, errors = _read(_write(tmp_path, images, annotations))
    assert [r["key"] for r in rows] == ["coco/000000000001"]
    (annotation,) = json.loads(rows[0]["annotations"])
    expected = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()
    assert annotation["segmentation"]["counts"] == expected
    assert errors == {
        "coco/000000000002": "rle_size_mismatch",
        "coco/000000000003": "bad_image_record",
        "coco/000000000004": "too_many_pixels",
        "coco/000000000005": "bad_image_record",
        "coco/000000000006": "duplicate_id",
    }


def test_a_deeply_nested_or_ownerless_annotations_file_is_a_clear_error(tmp_path):
    (tmp_path / "deep.json").write_bytes(b'{"images": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(ValueError, match="deep.json: JSON nested more than 32 levels"):
        plan_units(CocoParams(annotations=str(tmp_path / "deep.json"), n=3), seed=0)
    section = _write(tmp_path, [_image(1)], [_person(100, 1, SQUARE), "not an annotation"])
    with pytest.raises(ValueError, match=r"annotations\[1\] has no usable `image_id`"):
        plan_units(section, seed=0)


def test_a_dataset_keeps_its_name_and_feeds_its_role(tmp_path):
    section = _write(tmp_path, [_image(1), _image(2)], [_person(100, 1, SQUARE)])
    rem = replace(section, name="coco_rem", tasks=("semantic_segmentation",))
    units = plan_units(rem, seed=0)
    assert [u.name for u in units] == ["coco_rem-000000"] and units[0].source == "coco_rem"
    assert units[0].items == (
        ("000000000001", {"image_ids": [1]}),
        ("000000000002", {"image_ids": [2]}),
    )
    rows, errors = _read(rem)
    assert errors == {} and [r["key"] for r in rows] == [
        "coco_rem/000000000001",
        "coco_rem/000000000002",
    ]
    assert {r["source"] for r in rows} == {"coco_rem"}
    assert all(r["tasks"] == ["semantic_segmentation"] for r in rows)


def test_an_annotations_file_changed_after_planning_is_a_clear_error(tmp_path):
    section = _write(tmp_path, [_image(1)], [_person(100, 1, SQUARE)])
    (unit,) = plan_units(section, seed=0)
    path = Path(section.annotations)
    path.write_text(path.read_text().replace('"area": 100.0', '"area": 101.0'))
    with pytest.raises(ValueError, match="person_keypoints.json changed after the sample was"):
        list(iter_unit(unit, SampleParams()))


def test_dataset_names_and_roles_are_validated():
    with pytest.raises(ValueError, match="another source's name"):
        CocoParams(name="sa1b")
    with pytest.raises(ValueError, match="lower-case letters"):
        CocoParams(name="COCO-Rem")
    with pytest.raises(ValueError, match="non-empty and distinct"):
        CocoParams(name="x", tasks=())
    with pytest.raises(ValueError, match="coco repeats"):
        SampleParams(coco=(CocoParams(), CocoParams()))


def test_planning_keeps_only_the_image_ids_in_memory(tmp_path):
    import tracemalloc

    polygon = [float(v) for v in range(40)]
    annotations = [_person(i, 1 + i % 2000, polygon) for i in range(20_000)]
    images = [_image(i) for i in range(1, 2001)]
    document = {"images": images, "annotations": annotations, "categories": []}
    path = tmp_path / "big.json"
    path.write_text(json.dumps(document))
    del document, annotations
    tracemalloc.start()
    units = plan_units(CocoParams(annotations=str(path), n=2000, block_images=500), seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sum(len(u.items) for u in units) == 2000
    # the ids and one chunk's buffers (json.load holds about ten times the file)
    assert path.stat().st_size > 8 * 2**20 and peak < 6 * 2**20


def test_only_images_with_an_annotation_for_the_role_are_candidates(tmp_path):
    unlabelled = {**_person(300, 3, SQUARE), "keypoints": [0] * 9, "num_keypoints": 0}
    annotations = [_person(100, 1, SQUARE), unlabelled]
    section = _write(tmp_path, [_image(i) for i in range(1, 5)], annotations)
    picked = {
        tasks: [
            item for unit in plan_units(replace(section, **options), 0) for item, _ in unit.items
        ]
        for tasks, options in {
            "pose": {"only_annotated": True},
            "semantic": {"only_annotated": True, "tasks": ("semantic_segmentation",)},
            "all": {},
        }.items()
    }
    assert picked == {
        "pose": ["000000000001"],  # image 3's person has no labelled keypoint
        "semantic": ["000000000001", "000000000003"],
        "all": ["000000000001", "000000000002", "000000000003", "000000000004"],
    }

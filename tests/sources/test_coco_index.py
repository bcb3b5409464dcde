import json

import pyarrow.parquet as pq
import pytest

from dicepipe.params.sample import CocoParams, SampleParams
from dicepipe.sources import coco_index
from dicepipe.sources.coco import iter_unit, plan_units
from dicepipe.sources.coco_index import annotation_index, image_ids, read_records
from dicepipe.sources.common import collect
from tests.sources.counting import register as register_counting


def _document(images: int, per_image: int = 3) -> dict:
    records = [
        {"id": i, "file_name": f"{i:012d}.jpg", "width": 8, "height": 6} for i in range(images)
    ]
    records.append({"id": "extra", "file_name": "extra.jpg", "width": 8, "height": 6})
    annotations = [
        {
            "id": 1000 + i * per_image + k,
            "image_id": i,
            "category_id": 1,
            "bbox": [0.0, 0.0, 2.0, 2.0],
            "iscrowd": 0,
            "segmentation": [[0.0, 0.0, 4.0, 0.0, 4.0, 4.0]],
            "num_keypoints": k % 2,
        }
        for i in reversed(range(0, images, 2))  # file order unlike id order, every other image
        for k in range(per_image)
    ]
    annotations.append({"id": 5, "image_id": 10**9, "segmentation": []})  # no such image
    return {
        "images": records,
        "annotations": annotations,
        "categories": [{"id": 1}, {"id": 1, "x": 2}],
    }


def _file(tmp_path, images: int = 30) -> str:
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(_document(images)))
    return str(path)


def test_the_index_holds_what_streaming_reads(tmp_path):
    url = _file(tmp_path)
    index = annotation_index(url, tmp_path / "index")
    assert image_ids(index) == [*range(30), "extra"]
    assert image_ids(index, "annotated") == list(range(0, 30, 2))
    assert image_ids(index, "posed") == list(range(0, 30, 2))  # k = 1 has a keypoint
    images, annotations, categories = read_records(index, {4, "extra", 7})
    document = _document(30)
    assert images == {
        4: [document["images"][4]],
        "extra": [document["images"][30]],
        7: [document["images"][7]],
    }
    assert annotations == {4: [a for a in document["annotations"] if a["image_id"] == 4]}
    assert categories == {1: {"id": 1}}  # the first of a repeated id, as streaming keeps it


def test_records_are_sorted_by_rank_in_row_groups_a_unit_can_skip(tmp_path, monkeypatch):
    monkeypatch.setattr(coco_index, "GROUP_ROWS", 10)
    monkeypatch.setattr(coco_index, "PART_BYTES", 2000)  # several sorting partitions
    index = annotation_index(_file(tmp_path, images=60), tmp_path / "index")
    metadata = pq.ParquetFile(f"{index.folder}/records.parquet").metadata
    spans = [
        (
            metadata.row_group(g).column(0).statistics.min,
            metadata.row_group(g).column(0).statistics.max,
        )
        for g in range(metadata.num_row_groups)
    ]
    assert len(spans) > 5 and all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    images, annotations, _ = read_records(index, {50})
    assert list(images) == [50] and [a["id"] for a in annotations[50]] == [1150, 1151, 1152]


def test_a_second_plan_and_every_unit_read_no_annotation_byte(tmp_path):
    counting = register_counting()
    url = _file(tmp_path)
    section = CocoParams(
        name="coco_rem",
        annotations=f"counting://{url}",
        images=str(tmp_path),
        n=10,
        block_images=4,
        tasks=("semantic_segmentation",),
    )
    streamed = plan_units(section, seed=0)
    first = plan_units(section, seed=0, index_dir=tmp_path / "index")
    assert [u.items for u in first] == [u.items for u in streamed]
    counting.reset()
    again = plan_units(section, seed=0, index_dir=tmp_path / "index")
    assert again == first and counting.total(".json") == 0
    outcomes = [o for unit in again for o in iter_unit(unit, SampleParams(max_pixels=10**6))]
    _, errors, _ = collect(outcomes)
    assert {e.reason for _, e in errors} == {"missing_file"}  # no images: read past the index
    assert counting.total(".json") == 0


def test_a_changed_file_is_indexed_again(tmp_path):
    url = _file(tmp_path)
    first = annotation_index(url, tmp_path / "index")
    (tmp_path / "instances.json").write_text(json.dumps(_document(12)))
    second = annotation_index(url, tmp_path / "index")
    assert second.sha256 != first.sha256 and image_ids(second) == [*range(12), "extra"]


def test_a_file_that_is_not_coco_is_a_clear_error_and_no_index(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"images": [{"file_name": "a.jpg"}]}))
    with pytest.raises(ValueError, match=r"images\[0\] has no usable `id`"):
        annotation_index(str(path), tmp_path / "index")
    assert [p.name for p in (tmp_path / "index").iterdir()] == []

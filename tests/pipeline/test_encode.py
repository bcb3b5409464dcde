"""Encode of one unit: items whose labelling failed are accounted for once, not twice."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dicepipe.imageio import encode_png
from dicepipe.params.encode import EncodeParams
from dicepipe.params.runner import RunnerParams
from dicepipe.pipeline import encode, label
from dicepipe.pipeline.summary import item_accounting
from dicepipe.pipeline.units import error_path
from dicepipe.records import LABEL_SCHEMA, QUARANTINE_SCHEMA, SAMPLE_SCHEMA, quarantine_row
from dicepipe.shards.manifest import write_manifest
from dicepipe.sources.common import sample_row
from dicepipe.sources.synthetic.render import render_scene
from dicepipe.teachers.base import Label
from tests.reliability.craft import rle


def test_label_failures_are_not_quarantined_again_and_counts_balance(tmp_path):
    samples, labels, shards, work = (tmp_path / d for d in ("s", "l", "shards", "w"))
    for folder in (samples, labels, work):
        folder.mkdir()
    (tmp_path / "c").mkdir()
    scenes = [render_scene(7 + i, 48, 36) for i in range(2)]
    rows = [
        sample_row("openimages", f"id{i}", "u", "x", encode_png(s.rgb), [], 10**7)
        for i, s in enumerate(scenes)
    ]
    unit = "openimages-000000"
    pq.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA), samples / f"{unit}.parquet")
    good = Label("openimages/id0", scenes[0].depth, scenes[0].focal_px, scenes[0].normals, "t")
    pq.write_table(
        pa.Table.from_pylist([label.label_row(good)], schema=LABEL_SCHEMA),
        labels / f"{unit}.parquet",
    )
    failed = [quarantine_row("openimages/id1", "label", "teacher_error", "boom")]
    error_path(labels, unit).parent.mkdir()
    pq.write_table(pa.Table.from_pylist(failed, schema=QUARANTINE_SCHEMA), error_path(labels, unit))

    result = encode.run_unit(samples / f"{unit}.parquet", labels, EncodeParams(), shards, work)
    assert result["quarantined"] == 0
    assert {e["tasks"].get("depth") for e in result["shards"]} == {1}
    accounting = item_accounting(samples, labels, tmp_path / "c", work, shards)
    assert accounting["balanced"] and accounting["in_shards"] == 1
    assert accounting["quarantined"]["label"] == 1 and accounting["quarantined"]["encode"] == 0


def _write_unit(folder, unit: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA)
    pq.write_table(table, folder / f"{unit}.parquet")


def _coco_row(
    i: int, annotations: list[dict], tasks=("semantic_segmentation", "pose"), source="coco"
) -> dict:
    scene = render_scene(30 + i, 40, 30)
    png = encode_png(scene.rgb)
    return sample_row(source, f"{i:012d}", "u", "x", png, annotations, 10**7, tasks=tasks)


def _person(ann_id: int, keypoints: list[float]) -> dict:
    mask = np.zeros((30, 40), bool)
    mask[5:20, 10:30] = True
    return {
        "id": ann_id,
        "category_id": 1,
        "keypoints": keypoints,
        "num_keypoints": sum(1 for v in keypoints[2::3] if v > 0),
        "segmentation": rle(mask),
    }


def test_encode_quarantines_any_bad_item_and_keeps_the_rest(tmp_path):
    seventeen = [float(v) for k in range(17) for v in (10 + k, 5 + k, 2)]
    mask = np.zeros((30, 40), bool)
    mask[5:20, 10:30] = True
    bad_items = {
        1: [_person(1, seventeen), _person(2, seventeen[:48])],  # 17 and 16 keypoints
        2: [_person(1, [1e12, 5.0, 2.0] + seventeen[3:])],  # cv2 would overflow
        3: [{**_person(1, seventeen), "segmentation": {"size": [30, 40], "counts": [1200]}}],
        4: [{**_person(1, seventeen), "segmentation": {"size": [30, 40], "counts": "0`0!!"}}],
        5: [{**_person(1, seventeen), "segmentation": {"size": [31, 40], "counts": "P1"}}],
        6: [{**_person(1, seventeen), "keypoints": ["a", 1.0, 2.0]}],
    }
    rows = [_coco_row(0, [_person(1, seventeen)])]
    rows += [_coco_row(i, annotations) for i, annotations in bad_items.items()]
    rows.append({**_coco_row(7, []), "annotations": "{not json"})
    samples, labels, shards, work = (tmp_path / d for d in ("s", "l", "shards", "w"))
    _write_unit(samples, "coco-000000", rows)
    result = encode.run_unit(samples / "coco-000000.parquet", labels, EncodeParams(), shards, work)
    quarantine = pq.read_table(error_path(work, "coco-000000")).to_pylist()
    reasons = {row["key"]: row["reason"] for row in quarantine}
    assert reasons == {
        "coco/000000000001": "keypoint_count_mismatch",
        "coco/000000000002": "keypoints_out_of_bounds",
        "coco/000000000003": "invalid_rle",
        "coco/000000000004": "invalid_rle",
        "coco/000000000005": "rle_size_mismatch",
        "coco/000000000006": "bad_keypoints",
        "coco/000000000007": "unexpected_error",
    }
    assert "JSONDecodeError" in next(
        r["message"] for r in quarantine if r["reason"] == "unexpected_error"
    )
    assert result["quarantined"] == 7
    tasks = {e["path"]: e["tasks"] for e in result["shards"]}
    assert tasks == {"coco-000000-000.parquet": {"pose": 1, "semantic_segmentation": 1}}


def test_a_unit_with_every_item_quarantined_writes_no_shard_and_stays_done(tmp_path):
    samples, labels, shards, work = (tmp_path / d for d in ("s", "l", "shards", "w"))
    good = _coco_row(0, [_person(1, [float(v) for k in range(17) for v in (10 + k, 5 + k, 2)])])
    _write_unit(samples, "coco-000000", [good])
    unit, params = samples / "coco-000000.parquet", EncodeParams()
    assert len(encode.run_unit(unit, labels, params, shards, work)["shards"]) == 1
    _write_unit(samples, "coco-000000", [{**good, "annotations": "[]"}])  # now: no target
    result = encode.run_unit(unit, labels, params, shards, work)
    assert result["shards"] == [] and result["quarantined"] == 1
    assert list(shards.glob("*.parquet")) == []  # the old part went too
    marker = error_path(work, "coco-000000")
    stamp = marker.stat().st_mtime_ns
    assert encode.run_unit(unit, labels, params, shards, work) == result
    assert marker.stat().st_mtime_ns == stamp  # done: not encoded again
    manifest = write_manifest(shards, result["shards"])
    assert manifest["rows"] == 0 and manifest["shards"] == []


def test_switching_the_runner_re_encodes_nothing(tmp_path):
    samples, labels, shards, work = (tmp_path / d for d in ("s", "l", "shards", "w"))
    person = _person(1, [float(v) for k in range(17) for v in (10 + k, 5 + k, 2)])
    _write_unit(samples, "coco-000000", [_coco_row(0, [person])])
    unit = samples / "coco-000000.parquet"
    threads = encode.run_unit(unit, labels, EncodeParams(), shards, work)
    stamps = {p: p.stat().st_mtime_ns for p in shards.glob("*.parquet")}
    dask = EncodeParams(runner=RunnerParams(kind="dask", max_workers=3))
    assert encode.run_unit(unit, labels, dask, shards, work) == threads
    assert {p: p.stat().st_mtime_ns for p in shards.glob("*.parquet")} == stamps


def test_each_dataset_feeds_exactly_the_tasks_of_its_role(tmp_path):
    seventeen = [float(v) for k in range(17) for v in (10 + k, 5 + k, 2)]
    person = _person(1, seventeen)
    roles = {
        "coco": ("pose",),
        "coco_rem": ("semantic_segmentation",),
        "entityv2": ("entity_segmentation",),
        "sa1b": ("point_segmentation",),
        "both": ("point_segmentation", "entity_segmentation"),
        "none": (),
    }
    samples, labels, shards, work = (tmp_path / d for d in ("s", "l", "shards", "w"))
    made = {}
    for number, (source, tasks) in enumerate(roles.items()):
        unit = f"{source}-000000"
        _write_unit(samples, unit, [_coco_row(number, [person], tasks, source)])
        result = encode.run_unit(samples / f"{unit}.parquet", labels, EncodeParams(), shards, work)
        made[source] = sorted(t for entry in result["shards"] for t in entry["tasks"])
        if not tasks:
            assert result["quarantined"] == 1
    assert made == {
        "coco": ["pose"],
        "coco_rem": ["semantic_segmentation"],
        "entityv2": ["entity_segmentation"],  # categories present, used class-agnostically
        "sa1b": ["point_segmentation"],
        "both": ["entity_segmentation", "point_segmentation"],
        "none": [],
    }
    rows = pq.read_table(shards / "entityv2-000000-000.parquet").to_pylist()
    assert rows[0]["key"] == "entityv2/000000000002" and rows[0]["source"] == "entityv2"
    assert '"category"' not in rows[0]["meta"]


def test_labels_are_read_by_row_group_and_unsorted_units_keep_key_order(tmp_path):
    scenes = [render_scene(50 + i, 40, 30) for i in range(5)]
    rows = [
        sample_row("openimages", f"id{i}", "u", "x", encode_png(s.rgb), [], 10**7)
        for i, s in enumerate(scenes)
    ]
    labels = [
        label.label_row(Label(f"openimages/id{i}", s.depth, s.focal_px, s.normals, "t"))
        for i, s in enumerate(scenes)
    ]
    unit = "openimages-000000"
    tables = {}
    for name, order, group in (("whole", range(5), None), ("parts", [4, 1, 3, 0, 2], 2)):
        root = tmp_path / name
        _write_unit(root / "s", unit, [rows[i] for i in order])
        (root / "l" / "errors").mkdir(parents=True)
        table = pa.Table.from_pylist(labels, schema=LABEL_SCHEMA)
        pq.write_table(table, root / "l" / f"{unit}.parquet", row_group_size=group)
        pq.write_table(QUARANTINE_SCHEMA.empty_table(), error_path(root / "l", unit))
        encode.run_unit(
            root / "s" / f"{unit}.parquet", root / "l", EncodeParams(), root / "sh", root / "w"
        )
        tables[name] = pa.concat_tables(pq.read_table(p) for p in sorted((root / "sh").iterdir()))
    assert pq.ParquetFile(tmp_path / "parts" / "l" / f"{unit}.parquet").num_row_groups == 3
    assert tables["parts"].equals(tables["whole"]) and len(tables["whole"]) == 10
    assert tables["whole"]["key"].to_pylist() == sorted(tables["whole"]["key"].to_pylist())

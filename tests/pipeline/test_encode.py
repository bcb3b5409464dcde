"""Encode of one unit: items whose labelling failed are accounted for once, not twice."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from dicepipe.imageio import encode_png
from dicepipe.params import EncodeParams
from dicepipe.pipeline import encode, label
from dicepipe.pipeline.summary import item_accounting
from dicepipe.pipeline.units import error_path
from dicepipe.records import LABEL_SCHEMA, QUARANTINE_SCHEMA, SAMPLE_SCHEMA, quarantine_row
from dicepipe.sources.common import sample_row
from dicepipe.sources.synthetic.render import render_scene
from dicepipe.teachers.base import Label


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

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from dicepipe.imageio import encode_jpeg, encode_png
from dicepipe.shards.manifest import read_manifest, verify_manifest, write_manifest
from dicepipe.shards.writer import image_cell, write_shard


def _rows(n: int = 3) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        image = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        target = np.repeat(np.arange(16, dtype=np.uint8)[None, :, None] * 16, 12, 0).repeat(3, 2)
        for task in ("normal", "depth"):
            rows.append(
                {
                    "key": f"openimages/{i:04d}",
                    "task": task,
                    "prompt": f"image2{task}",
                    "image": image_cell(encode_jpeg(image)),
                    "target": image_cell(encode_png(target)),
                    "points": [[0.25, 0.5]] if i == 0 else [],
                    "source": "openimages",
                    "source_id": f"{i:04d}",
                    "width": 16,
                    "height": 12,
                    "teacher": "ground_truth:v1",
                    "meta": json.dumps({"i": i}),
                }
            )
    return rows


def test_shard_round_trip_through_datasets(tmp_path):
    import datasets

    rows = _rows()
    entry = write_shard(tmp_path / "shard.parquet", rows)
    assert entry["rows"] == 6 and entry["tasks"] == {"depth": 3, "normal": 3}
    loaded = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "shard.parquet"), split="train"
    )
    first = loaded[0]
    assert first["key"] == "openimages/0000" and first["task"] == "depth"  # sorted by key, task
    assert first["image"].size == (16, 12) and first["target"].mode == "RGB"
    target = np.asarray(first["target"])
    assert np.array_equal(target[0, :, 0], np.arange(16, dtype=np.uint8) * 16)
    assert first["points"] == [[0.25, 0.5]]


def test_image_columns_are_stored_uncompressed_and_the_rest_zstd(tmp_path):
    write_shard(tmp_path / "s.parquet", _rows())
    group = pq.read_metadata(tmp_path / "s.parquet").row_group(0)
    codecs = {
        group.column(i).path_in_schema: group.column(i).compression
        for i in range(group.num_columns)
    }
    assert codecs["image.bytes"] == "UNCOMPRESSED" and codecs["target.bytes"] == "UNCOMPRESSED"
    assert codecs["meta"] == "ZSTD" and codecs["key"] == "ZSTD"


def test_same_rows_give_same_bytes_in_any_order(tmp_path):
    rows = _rows()
    a = write_shard(tmp_path / "a.parquet", rows)
    b = write_shard(tmp_path / "b.parquet", list(reversed(rows)))
    assert a["sha256"] == b["sha256"]


def test_manifest_lists_and_verifies_shards(tmp_path):
    entry = write_shard(tmp_path / "x.parquet", _rows())
    manifest = write_manifest(tmp_path, [entry], sources={"openimages": 6})
    assert read_manifest(tmp_path) == manifest
    assert manifest["rows"] == 6 and manifest["tasks"] == {"depth": 3, "normal": 3}
    assert verify_manifest(tmp_path) == []
    with open(tmp_path / "x.parquet", "ab") as handle:
        handle.write(b"tamper")
    assert verify_manifest(tmp_path) == ["x.parquet: sha256 differs from the manifest"]
    (tmp_path / "x.parquet").unlink()
    assert verify_manifest(tmp_path) == ["x.parquet: missing"]


def test_bad_rows_are_refused(tmp_path):
    rows = _rows(1)
    rows[0]["width"] = "sixteen"
    with pytest.raises(Exception, match="int"):
        write_shard(tmp_path / "bad.parquet", rows)
    assert not (tmp_path / "bad.parquet").exists()


def test_units_split_into_size_bounded_parts_and_detect_completion(tmp_path):
    from dicepipe.shards.writer import finished_unit_shards, split_by_size, write_unit_shards

    rows = _rows(6)

    def size(row):
        return len(row["image"]["bytes"]) + len(row["target"]["bytes"]) + 256

    target = 3 * max(map(size, rows))
    parts = split_by_size(rows, target_bytes=target)
    assert [row for part in parts for row in part] == rows  # order kept, nothing lost
    assert len(parts) >= 4 and all(sum(map(size, part)) <= target for part in parts)
    assert split_by_size(rows[:1], target_bytes=1) == [rows[:1]]  # never an empty part
    entries = write_unit_shards(tmp_path, "u-000001", rows, "fp", shard_bytes=target)
    n = len(entries)
    assert [e["path"] for e in entries] == [f"u-000001-{k:03d}.parquet" for k in range(n)]
    assert sum(e["rows"] for e in entries) == 12
    assert finished_unit_shards(tmp_path, "u-000001", "fp") is not None
    assert finished_unit_shards(tmp_path, "u-000001", "other") is None
    (tmp_path / "u-000001-002.parquet").unlink()  # a killed run leaves a gap
    assert finished_unit_shards(tmp_path, "u-000001", "fp") is None
    fewer = write_unit_shards(tmp_path, "u-000001", rows, "fp2", shard_bytes=10**9)
    assert len(fewer) == 1 and sorted(p.name for p in tmp_path.glob("u-000001-*")) == [
        "u-000001-000.parquet"
    ]


def test_no_shard_is_ever_empty(tmp_path):
    from dicepipe.shards.writer import unit_shard_paths, write_unit_shards

    with pytest.raises(ValueError, match="empty shard"):
        write_shard(tmp_path / "empty.parquet", [])
    assert not (tmp_path / "empty.parquet").exists()
    assert len(write_unit_shards(tmp_path, "u-000002", _rows(2), "fp", shard_bytes=10**9)) == 1
    assert write_unit_shards(tmp_path, "u-000002", [], "fp2", shard_bytes=10**9) == []
    assert unit_shard_paths(tmp_path, "u-000002") == []  # the old part went with its rows


@pytest.mark.parametrize(("shard_bytes", "row_group_bytes"), [(10**9, 10**9), (3000, 700)])
def test_streamed_unit_shards_are_the_bytes_of_the_list_writer(
    tmp_path, shard_bytes, row_group_bytes
):
    from dicepipe.shards.writer import UnitShardWriter, write_unit_shards

    rows = sorted(_rows(40), key=lambda r: r["key"])  # key order; tasks unsorted within a key
    (tmp_path / "a").mkdir()
    listed = write_unit_shards(
        tmp_path / "a", "u-1", rows, "fp", shard_bytes=shard_bytes, row_group_bytes=row_group_bytes
    )
    writer = UnitShardWriter(
        tmp_path / "b", "u-1", "fp", shard_bytes=shard_bytes, row_group_bytes=row_group_bytes
    )
    for row in rows:
        writer.add(row)
    streamed = writer.close()
    assert streamed == listed
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [e["path"] for e in listed]
    groups = [pq.ParquetFile(tmp_path / "b" / e["path"]).num_row_groups for e in streamed]
    if shard_bytes < 10**9:
        assert len(streamed) > 1 and max(groups) > 1  # several parts of several row groups


def test_streamed_unit_shards_refuse_rows_out_of_key_order(tmp_path):
    from dicepipe.shards.writer import UnitShardWriter

    writer = UnitShardWriter(tmp_path, "u-1", "fp", shard_bytes=10**9)
    rows = _rows(2)
    writer.add(rows[2])
    with pytest.raises(ValueError, match="rows out of key order: 'openimages/0000' after"):
        writer.add(rows[0])
    writer.discard()
    assert list(tmp_path.iterdir()) == []  # no spill file left

import json
from pathlib import Path

import numpy as np
import pytest

from dicepipe.cli import main
from dicepipe.imageio import encode_png
from dicepipe.shards.manifest import write_manifest
from dicepipe.shards.writer import image_cell, write_shard


def _rows(task: str, source: str, n: int, teacher: str) -> list[dict]:
    png = encode_png(np.full((6, 8, 3), 100, np.uint8))
    return [
        {
            "key": f"{source}/{i}",
            "task": task,
            "prompt": f"image2{task}",
            "image": image_cell(png),
            "target": image_cell(png),
            "points": [],
            "source": source,
            "source_id": str(i),
            "width": 8,
            "height": 6,
            "teacher": teacher,
            "meta": "{}",
        }
        for i in range(n)
    ]


@pytest.fixture
def shards(tmp_path) -> Path:
    folder = tmp_path / "shards"
    entries = [
        write_shard(folder / "a.parquet", _rows("depth", "openimages", 3, "depth_pro:v1")),
        write_shard(folder / "b.parquet", _rows("pose", "coco", 2, "annotations")),
    ]
    write_manifest(folder, entries, sources={"coco": 2, "openimages": 3})
    return folder


def test_inspect_prints_the_card_statistics_and_verifies(shards, capsys):
    summary = shards.parent / "work/encode/summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"selected": 6, "in_shards": 5, "quarantined": {"sample": 1}}))
    assert main(["inspect", str(shards)]) == 0
    out = capsys.readouterr().out
    assert f"{shards}: 2 shards, 5 rows" in out
    lines = {}
    for line in out.splitlines():  # the counts table comes first
        lines.setdefault(line.split()[0], line.split()[1:])
    assert lines["depth"][:3] == ["0", "3", "3"]  # coco, openimages, total
    assert lines["pose"][:3] == ["2", "0", "2"]
    assert "depth_pro:v1" in out and "8-8 x 6-6" in out
    assert "6 selected = 5 in shards + 1 quarantined (sample 1)" in out
    assert "a.parquet" in out and out.rstrip().endswith("sha256 verified")


def test_inspect_fails_on_a_changed_byte(shards, capsys):
    path = shards / "b.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert main(["inspect", str(shards)]) == 1
    out = capsys.readouterr().out
    assert "b.parquet: sha256 differs from the manifest" in out


def test_inspect_fails_on_missing_or_unlisted_shards(shards, capsys):
    (shards / "stray.parquet").write_bytes((shards / "a.parquet").read_bytes())
    assert main(["inspect", str(shards)]) == 1
    assert "stray.parquet: not in the manifest" in capsys.readouterr().out
    (shards / "a.parquet").unlink()
    assert main(["inspect", str(shards)]) == 1
    assert "a.parquet: missing" in capsys.readouterr().out


def test_inspect_refuses_a_folder_without_manifest(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 1
    assert "no manifest.json" in capsys.readouterr().err


def test_audit_command_prints_perfect_scores_for_exact_labels(capsys):
    from dicepipe.cli import main

    params = Path(__file__).resolve().parents[1] / "params.yaml"
    code = main(
        [
            "audit",
            "--params",
            str(params),
            "--teacher",
            "ground_truth",
            "--scenes",
            "2",
            "--width",
            "48",
            "--height",
            "36",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "ground_truth:v1" in out and "AbsRel 0.0000  delta1 1.0000" in out


def test_make_sample_regenerates_the_committed_corpus_byte_for_byte(tmp_path):
    from dicepipe.cli import main

    committed = Path(__file__).resolve().parents[1] / "data" / "sample"
    assert main(["make-sample", "--out", str(tmp_path), "--seed", "0"]) == 0
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert made == sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    for relative in made:
        assert (tmp_path / relative).read_bytes() == (committed / relative).read_bytes(), relative


def test_inspect_reads_the_folder_with_datasets_and_reports_an_empty_shard(shards, capsys):
    import pyarrow as pa

    from dicepipe.shards.manifest import read_manifest, shard_entry
    from dicepipe.shards.writer import shard_schema
    from dicepipe.storage import write_parquet

    write_parquet(shards / "c.parquet", pa.Table.from_pylist([], schema=shard_schema()))
    manifest = read_manifest(shards)
    write_manifest(shards, [*manifest["shards"], shard_entry(shards / "c.parquet")])
    assert main(["inspect", str(shards)]) == 1
    out = capsys.readouterr().out
    assert "c.parquet: empty shard (0 rows)" in out
    assert "datasets.load_dataset fails" in out and "BatchSize must be greater than 0" in out


def test_audit_with_bad_params_exits_2_naming_the_key(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("label:\n  batch_size: 0\n")
    assert main(["audit", "--teacher", "ground_truth", "--params", str(params)]) == 2
    assert "error: label.batch_size: 0 is below the minimum 1" in capsys.readouterr().err

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dicepipe.imageio import decode_image, encode_png
from dicepipe.params.encode import EncodeParams
from dicepipe.shards.card import (
    CARD_NAME,
    params_digest,
    shard_stats,
    size_category,
    write_card,
)
from dicepipe.shards.manifest import verify_manifest, write_manifest
from dicepipe.shards.preview import HEADER_PX
from dicepipe.shards.writer import image_cell, write_shard
from dicepipe.tasks import TASK_PROMPTS

ACCOUNTING = {"selected": 9, "in_shards": 8, "quarantined": {"sample": 1, "encode": 0}}


def _row(task: str, source: str, i: int, teacher: str) -> dict:
    image = np.full((24, 32, 3), 90 + 10 * i, np.uint8)
    target = np.zeros((24, 32, 3), np.uint8)
    target[6:18, 8:24] = 255
    return {
        "key": f"{source}/{i:03d}",
        "task": task,
        "prompt": TASK_PROMPTS[task],
        "image": image_cell(encode_png(image)),
        "target": image_cell(encode_png(target)),
        "points": [[0.5, 0.5], [0.4, 0.4]] if task == "point_segmentation" else [],
        "source": source,
        "source_id": f"{i:03d}",
        "width": 32,
        "height": 24,
        "teacher": teacher,
        "meta": "{}",
    }


@pytest.fixture
def shards(tmp_path) -> tuple[Path, dict]:
    first = [
        _row(t, "openimages", i, "depth_pro:v1") for t in ("depth", "normal") for i in range(3)
    ]
    second = [_row("point_segmentation", "sa1b", i, "annotations") for i in range(4)]
    second += [_row("point_segmentation", "p3m", i, "composite") for i in range(2)]
    entries = [
        write_shard(tmp_path / "a.parquet", first),
        write_shard(tmp_path / "b.parquet", second),
    ]
    return tmp_path, write_manifest(tmp_path, entries, sources={})


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_stats_count_tasks_by_source_and_list_teachers(shards):
    folder, manifest = shards
    stats = shard_stats(folder, manifest)
    assert stats["tasks"] == {
        "depth": {"openimages": 3},
        "normal": {"openimages": 3},
        "point_segmentation": {"p3m": 2, "sa1b": 4},
    }
    assert stats["teachers"]["point_segmentation"] == ["annotations", "composite"]
    assert stats["sizes"]["depth"] == [32, 32, 24, 24] and stats["rows"] == 12


def test_card_has_hf_front_matter_tables_teachers_and_digest(shards):
    folder, manifest = shards
    write_card(folder, manifest, EncodeParams(), ACCOUNTING)
    text = (folder / CARD_NAME).read_text()
    front = _front_matter(text)
    assert front["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "*.parquet"}]}
    ]
    assert front["task_categories"] == ["depth-estimation", "image-segmentation", "image-to-image"]
    assert front["size_categories"] == ["n<1K"]
    assert "| point_segmentation | 0 | 2 | 4 | 6 |" in text  # openimages, p3m, sa1b, total
    assert "`annotations`, `composite`" in text and "`depth_pro:v1`" in text
    assert params_digest(EncodeParams()) in text and "min_black_distance: 80.0" in text
    assert "9 items selected: 8 in the shards, 1 quarantined" in text
    assert "a.parquet" in text and manifest["shards"][0]["sha256"] in text


def test_previews_show_image_and_target_with_points(shards):
    folder, manifest = shards
    write_card(folder, manifest, EncodeParams(), preview_rows=2)
    text = (folder / CARD_NAME).read_text()
    for task in ("depth", "normal", "point_segmentation"):
        assert f"![{task}](preview-{task}.png)" in text
        picture = decode_image((folder / f"preview-{task}.png").read_bytes()).rgb
        assert picture.shape == (HEADER_PX + 2 * 160 + 4, 2 * 160 + 4, 3)  # image | target
    red = lambda rgb: bool(((rgb == (255, 0, 0)).all(axis=2)).any())  # noqa: E731
    assert red(decode_image((folder / "preview-point_segmentation.png").read_bytes()).rgb)
    assert not red(decode_image((folder / "preview-depth.png").read_bytes()).rgb)


def test_card_bytes_are_deterministic_and_stale_previews_go(shards):
    folder, manifest = shards
    (folder / "preview-pose.png").write_bytes(b"old")

    def digests() -> dict:
        files = sorted([folder / CARD_NAME, *folder.glob("preview-*.png")])
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    write_card(folder, manifest, EncodeParams(), ACCOUNTING)
    first = digests()
    write_card(folder, manifest, EncodeParams(), ACCOUNTING)
    assert digests() == first and "preview-pose.png" not in first
    write_card(folder, manifest, EncodeParams(seed=1), ACCOUNTING)
    assert digests()[CARD_NAME] != first[CARD_NAME]


def test_card_keeps_shards_loadable_and_verified(shards):
    import datasets

    folder, manifest = shards
    write_card(folder, manifest, EncodeParams())
    assert verify_manifest(folder) == []
    files = str(folder / "*.parquet")
    assert len(datasets.load_dataset("parquet", data_files=files, split="train")) == 12
    by_card = datasets.load_dataset(str(folder), split="train")  # the card's `configs`
    assert len(by_card) == 12 and by_card[0]["image"].size == (32, 24)
    assert json.loads((folder / "manifest.json").read_text()) == manifest


@pytest.mark.parametrize(("rows", "name"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K")])
def test_size_category(rows, name):
    assert size_category(rows) == name


def test_the_runner_is_neither_recorded_nor_digested(shards):
    from dicepipe.params.runner import RunnerParams

    folder, manifest = shards
    dask = EncodeParams(runner=RunnerParams(kind="dask", max_workers=7))
    assert params_digest(dask) == params_digest(EncodeParams())
    write_card(folder, manifest, EncodeParams(), ACCOUNTING)
    threads_card = (folder / CARD_NAME).read_bytes()
    write_card(folder, manifest, dask, ACCOUNTING)
    assert (folder / CARD_NAME).read_bytes() == threads_card
    assert b"runner:" not in threads_card and b"max_workers" not in threads_card

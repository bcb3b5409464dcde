"""Checkpoint bookkeeping without training: completeness, resume choice, pruning, renames."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicepipe.storage import write_json
from dicepipe.train import checkpoints


def _checkpoint(root: Path, step: int, digest: str = "d", complete: bool = True) -> Path:
    folder = root / checkpoints.checkpoint_name(step)
    folder.mkdir(parents=True)
    if complete:
        write_json(folder / checkpoints.MARKER, {"step": step, "digest": digest})
    return folder


def test_only_complete_checkpoints_count_in_step_order(tmp_path):
    for step in (10, 2, 30):
        _checkpoint(tmp_path, step)
    _checkpoint(tmp_path, 40, complete=False)
    checkpoints.temporary_dir(tmp_path, 50).mkdir()
    assert [s for s, _ in checkpoints.complete_checkpoints(tmp_path)] == [2, 10, 30]
    assert checkpoints.complete_checkpoints(tmp_path / "absent") == []


def test_latest_is_the_newest_with_the_same_digest(tmp_path):
    _checkpoint(tmp_path, 1, "a")
    _checkpoint(tmp_path, 2, "a")
    _checkpoint(tmp_path, 3, "b")
    assert checkpoints.find_resume(tmp_path, "latest", "a").name == "checkpoint-2"
    assert checkpoints.find_resume(tmp_path, "latest", "c") is None
    assert checkpoints.find_resume(tmp_path, None, "a") is None
    named = checkpoints.find_resume(tmp_path, str(tmp_path / "checkpoint-3"), "a")
    assert named == tmp_path / "checkpoint-3"  # a named checkpoint is taken as it is
    with pytest.raises(FileNotFoundError):
        checkpoints.find_resume(tmp_path, str(tmp_path / "checkpoint-9"), "a")


def test_prune_keeps_the_newest_and_drops_temporaries(tmp_path):
    for step in (1, 2, 3):
        _checkpoint(tmp_path, step)
    checkpoints.temporary_dir(tmp_path, 4).mkdir()
    checkpoints.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-3"]


def test_clear_removes_only_checkpoints(tmp_path):
    _checkpoint(tmp_path, 1)
    checkpoints.temporary_dir(tmp_path, 2).mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    checkpoints.clear(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_publish_replaces_an_existing_folder(tmp_path):
    final, tmp = tmp_path / "model", tmp_path / ".tmp-model"
    final.mkdir()
    (final / "old").write_text("old")
    tmp.mkdir()
    (tmp / "new").write_text("new")
    checkpoints.publish(tmp, final)
    assert [p.name for p in final.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_re_encoded_shards_start_a_new_run_instead_of_resuming(tmp_path):
    from dicepipe.params.loader import LoaderParams
    from dicepipe.params.train import TrainParams
    from dicepipe.shards.manifest import write_manifest
    from dicepipe.train.build import run_digest

    shards = tmp_path / "shards"
    shards.mkdir()
    entry = {"path": "a.parquet", "rows": 1, "bytes": 1, "sha256": "0" * 64, "tasks": {}}
    write_manifest(shards, [entry])
    loader = LoaderParams(shards=str(shards))
    before = run_digest(TrainParams(), loader)
    write_manifest(shards, [{**entry, "sha256": "1" * 64}])
    assert run_digest(TrainParams(), loader) != before

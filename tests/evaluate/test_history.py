"""Checkpoint history: content identity, broken folders, and every checkpoint evaluated
exactly once across runs (the plain-Python path the Prefect flow maps onto tasks)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dicepipe.evaluate import history
from dicepipe.evaluate.history import (
    CheckpointError,
    HistoryBusy,
    check_safetensors,
    find_checkpoints,
    history_lock,
    read_log,
    step_of,
    sync_log,
    weights_identity,
)
from dicepipe.evaluate.reevaluation import evaluate_or_report, reevaluate_once
from dicepipe.storage import sha256_file
from tests.evaluate.tiny import fast_params, save_model

WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A complete model folder to copy from."""
    return save_model(tmp_path_factory.mktemp("good") / "model")


def checkpoint(root: Path, step: int, source: Path) -> Path:
    folder = root / "runs" / "checkpoints" / f"checkpoint-{step}" / "model"
    shutil.copytree(source, folder)
    return folder


def test_identity_is_the_weights_sha256_and_follows_the_content(tmp_path, good):
    assert weights_identity(good) == sha256_file(good / WEIGHTS)
    copy = shutil.copytree(good, tmp_path / "copy")
    assert weights_identity(copy) == weights_identity(good)
    other = save_model(tmp_path / "other", seed=1)
    assert weights_identity(other) != weights_identity(good)
    (copy / "extra.safetensors").write_bytes((good / WEIGHTS).read_bytes())
    assert len(weights_identity(copy)) == 64 and weights_identity(copy) != weights_identity(good)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "config.json").unlink(), "no config.json"),
        (lambda f: (f / "config.json").write_text("{"), "config.json unreadable"),
        (lambda f: (f / WEIGHTS).unlink(), "no \\*.safetensors"),
        (lambda f: _truncate(f / WEIGHTS, 0.5), "header describes another size"),
        (lambda f: _truncate(f / WEIGHTS, 0.0), "truncated or not safetensors"),
        (
            lambda f: (f / WEIGHTS).write_bytes(b"\x10" + b"\x00" * 7 + b"not json at all!"),
            "header",
        ),
    ],
)
def test_a_half_written_or_garbled_folder_is_not_a_checkpoint(tmp_path, good, damage, message):
    folder = shutil.copytree(good, tmp_path / "model")
    damage(folder)
    with pytest.raises(CheckpointError, match=message):
        weights_identity(folder)


def _truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def test_steps_and_discovery_order(tmp_path, good):
    for step in (1000, 200, 30):
        checkpoint(tmp_path, step, good)
    final = shutil.copytree(good, tmp_path / "runs" / "model")
    patterns = (str(tmp_path / "runs" / "model"), str(tmp_path / "runs/checkpoints/*/model"))
    found = find_checkpoints(patterns)
    assert [step_of(f) for f in found] == [30, 200, 1000, None] and found[-1] == final
    assert find_checkpoints((*patterns, str(tmp_path / "runs" / "model"))) == found
    check_safetensors(good / WEIGHTS)


def test_each_checkpoint_is_evaluated_exactly_once_and_broken_ones_later(tmp_path, good):
    params = fast_params(tmp_path, tasks=("depth",))
    calls: list[str] = []

    def evaluate_all(todo):
        calls.extend(c.folder for c in todo)
        return [evaluate_or_report(c, params) for c in todo]

    first = checkpoint(tmp_path, 100, good)
    truncated = checkpoint(tmp_path, 200, save_model(tmp_path / "b", seed=2))
    _truncate(truncated / WEIGHTS, 0.7)
    writing = checkpoint(tmp_path, 300, save_model(tmp_path / "c", seed=3))
    (writing / "config.json").rename(tmp_path / "config-300.json")

    table = reevaluate_once(params, evaluate_all)
    assert calls == [str(first)]
    assert [(row["step"], row["status"]) for row in table] == [
        (100, "evaluated"),
        (200, "broken"),
        (300, "broken"),
    ]
    assert "no config.json" in table[2]["detail"]
    log = Path(params.reevaluate.log)
    assert [r["step"] for r in read_log(log)] == [100]
    (record_file,) = Path(params.reevaluate.history).glob("*.json")
    record = json.loads(record_file.read_text())
    assert record["sha256"].startswith(table[0]["sha256"]) and record["step"] == 100
    assert record["metrics"]["heldout"]["depth"]["model"]["n_images"] == 3

    table = reevaluate_once(params, evaluate_all)  # nothing new: nothing evaluated
    assert calls == [str(first)] and [r["status"] for r in table][0] == "already evaluated"
    assert len(read_log(log)) == 1

    shutil.rmtree(truncated)
    save_model(truncated, seed=2)  # training finished writing both
    (tmp_path / "config-300.json").rename(writing / "config.json")
    table = reevaluate_once(params, evaluate_all)
    assert calls == [str(first), str(truncated), str(writing)]
    assert [r["status"] for r in table] == ["already evaluated", "evaluated", "evaluated"]
    assert [r["step"] for r in read_log(log)] == [100, 200, 300]
    reevaluate_once(params, evaluate_all)
    assert len(calls) == 3 and len(read_log(log)) == 3
    assert Path(params.reevaluate.plot).stat().st_size > 0


def test_equal_weights_are_evaluated_once_and_failures_are_retried(tmp_path, good):
    params = fast_params(tmp_path, tasks=("depth",))
    checkpoint(tmp_path, 1, good)
    checkpoint(tmp_path, 2, good)  # the same weights: a duplicate
    broken = checkpoint(tmp_path, 3, save_model(tmp_path / "x", seed=4))
    (broken / "config.json").write_text("{}")  # loads as another architecture: fails
    table = reevaluate_once(params)
    assert [r["status"] for r in table] == ["evaluated", "duplicate weights", "failed"]
    assert "Error" in table[2]["detail"]
    shutil.rmtree(broken)
    save_model(broken, seed=4)
    assert [r["status"] for r in reevaluate_once(params)][-1] == "evaluated"
    assert [r["step"] for r in read_log(params.reevaluate.log)] == [1, 3]


def test_weights_that_change_during_evaluation_are_not_recorded(tmp_path, good, monkeypatch):
    params = fast_params(tmp_path, tasks=("depth",))
    folder = checkpoint(tmp_path, 5, good)
    found = history.plan(params.reevaluate).pending[0]
    real = history.weights_identity
    monkeypatch.setattr(history, "weights_identity", lambda f: real(f)[::-1])
    result = evaluate_or_report(found, params)
    assert result["status"] == "broken" and "changed while being evaluated" in result["error"]
    assert not list(Path(params.reevaluate.history).glob("*.json")) and folder.is_dir()


def test_the_log_is_rebuilt_from_the_records_once(tmp_path):
    records, log = tmp_path / "history", tmp_path / "history.jsonl"
    records.mkdir()
    for sha, step in (("b" * 64, 20), ("a" * 64, 10)):
        body = {"sha256": sha, "step": step, "evaluated_at": "t", "headline": {}}
        (records / f"{sha}.json").write_text(json.dumps(body))
    assert [r["step"] for r in sync_log(records, log)] == [10, 20]
    assert sync_log(records, log) == [] and len(read_log(log)) == 2
    assert not list(tmp_path.glob(".history.jsonl.*"))  # no temporary left behind


def test_one_run_at_a_time(tmp_path):
    params = fast_params(tmp_path)
    with history_lock(params.reevaluate.history), pytest.raises(HistoryBusy):
        reevaluate_once(params)
    assert reevaluate_once(params) == []  # released: an empty run

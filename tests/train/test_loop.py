"""The training loop in one process: outputs, exact resume, atomic checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dicepipe.model import DiceptionModel
from dicepipe.model.inference import INFERENCE_FILE
from dicepipe.train.checkpoints import complete_checkpoints
from dicepipe.train.curves import read_curves
from dicepipe.train.distributed import state_checksum
from dicepipe.train.loop import train


def _losses(output: str) -> list[float]:
    return read_curves(Path(output) / "live")["loss"][1]


def test_a_few_steps_give_a_loadable_model_curves_and_metrics(make_params):
    params, loader = make_params(steps=4, checkpoint_every=1, keep_checkpoints=2)
    summary = train(params, loader)
    out = Path(params.output)

    model = DiceptionModel.from_pretrained(out / "model")
    assert model.tasks[:2] == ["depth", "normal"] and model.config.space == "pixel"
    final = complete_checkpoints(out / "checkpoints")
    assert [step for step, _ in final] == [3, 4]  # the last 2 kept
    saved = DiceptionModel.from_pretrained(final[-1][1] / "model")
    assert state_checksum(saved) == state_checksum(model)

    curves = read_curves(out / "live")
    assert curves["loss"][0] == [1, 2, 3, 4]
    assert {"lr", "samples_per_s"} <= set(curves)
    assert any(name.startswith("task_loss/") for name in curves)
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    for folder in (out / "model", final[-1][1] / "model"):
        info = json.loads((folder / INFERENCE_FILE).read_text())
        assert (info["resolution"], info["vae"]) == (16, None)
    assert json.loads(Path(params.metrics).read_text()) == summary
    assert summary["steps"] == 4 and summary["first_loss"] == curves["loss"][1][0]
    assert summary["samples_per_s"] > 0 and summary["global_batch"] == 4


def test_a_resumed_run_repeats_the_uninterrupted_losses_and_weights(make_params):
    changes = {"grad_accum": 2, "checkpoint_every": 3}
    straight, loader = make_params("straight", steps=6, **changes)
    train(straight, loader)

    first, _ = make_params("resumed", steps=3, **changes)
    train(first, loader)
    second, _ = make_params("resumed", steps=6, resume="latest", **changes)
    summary = train(second, loader)

    assert summary["resumed_from"] == 3
    assert _losses(second.output) == _losses(straight.output)  # bit for bit
    assert len(_losses(second.output)) == 6
    a = DiceptionModel.from_pretrained(Path(straight.output) / "model")
    b = DiceptionModel.from_pretrained(Path(second.output) / "model")
    assert state_checksum(a) == state_checksum(b)


def test_a_rerun_of_a_finished_run_rewrites_the_same_model_folder(make_params):
    from tests.project import digests

    params, loader = make_params("finished", steps=3, checkpoint_every=3, resume="latest")
    first = train(params, loader)
    model = Path(params.output) / "model"
    before = digests(model)
    again = train(params, loader)  # resumes at step 3: no step runs
    assert again["resumed_from"] == 3 and first["resumed_from"] == 0
    # the time of the first process comes along in the checkpoint's trainer.json
    record = json.loads((Path(params.output) / "checkpoints/checkpoint-3/trainer.json").read_text())
    assert record["timed_steps"] == 3
    assert again["step_time_s"] == first["step_time_s"] == record["step_seconds"] / 3 > 0
    assert again["samples_per_s"] == first["samples_per_s"]
    assert again["train_time_s"] > record["train_time_s"] > 0
    assert digests(model) == before  # the card holds no timing of the run


def test_resume_latest_ignores_temporary_and_incomplete_checkpoints(make_params):
    params, loader = make_params(steps=2, checkpoint_every=2)
    train(params, loader)
    root = Path(params.output) / "checkpoints"
    shutil.copytree(root / "checkpoint-2", root / ".tmp-checkpoint-9")  # killed mid-save
    shutil.copytree(root / "checkpoint-2", root / "checkpoint-8")
    (root / "checkpoint-8" / "trainer.json").unlink()  # no marker: never complete

    resumed, _ = make_params(steps=3, checkpoint_every=2, resume="latest")
    assert train(resumed, loader)["resumed_from"] == 2
    assert not (root / ".tmp-checkpoint-9").exists()  # the next save cleans up


def test_resume_latest_starts_over_when_the_params_changed(make_params):
    params, loader = make_params(steps=2)
    train(params, loader)
    changed, _ = make_params(steps=2, lr=5e-4, resume="latest")
    assert train(changed, loader)["resumed_from"] == 0
    extended, _ = make_params(steps=4, lr=5e-4, resume="latest")  # steps alone: continue
    assert train(extended, loader)["resumed_from"] == 2


def test_resume_from_a_named_checkpoint_that_is_incomplete_is_an_error(make_params, tmp_path):
    (tmp_path / "half").mkdir()
    params, loader = make_params(resume=str(tmp_path / "half"))
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        train(params, loader)


def test_gradient_checkpointing_changes_memory_not_the_losses(make_params):
    plain, loader = make_params("plain", steps=2)
    train(plain, loader)
    checkpointed, _ = make_params("checkpointed", steps=2, gradient_checkpointing=True)
    train(checkpointed, loader)
    assert _losses(checkpointed.output) == pytest.approx(_losses(plain.output), rel=1e-5)


def test_bf16_autocast_trains_on_the_cpu(make_params):
    params, loader = make_params(steps=2, mixed_precision="bf16")
    summary = train(params, loader)
    assert summary["mixed_precision"] == "bf16" and 0 < summary["final_loss"] < 10


def test_task_loss_weights_follow_the_loader_task_ids():
    from dicepipe.params.train import TaskLossWeights, TrainParams
    from dicepipe.tasks import TASK_NAMES
    from dicepipe.train.loop import task_loss_weights

    weights = task_loss_weights(TrainParams(task_loss_weights=TaskLossWeights(pose=4.0)))
    assert weights.tolist() == [4.0 if name == "pose" else 1.0 for name in TASK_NAMES]


def test_foreground_weights_follow_the_loader_task_ids_and_are_off_at_one():
    from dicepipe.params.train import ForegroundWeights, TrainParams
    from dicepipe.tasks import TASK_NAMES
    from dicepipe.train.loop import foreground_weights

    assert foreground_weights(TrainParams()) is None
    weights = foreground_weights(TrainParams(foreground_weights=ForegroundWeights(pose=10.0)))
    assert weights is not None
    assert weights.tolist() == [10.0 if name == "pose" else 1.0 for name in TASK_NAMES]


def test_foreground_weights_reach_the_training_loss(make_params):
    from dicepipe.params.train import ForegroundWeights

    plain, loader = make_params("plain", steps=1)
    heavy = ForegroundWeights(
        point_segmentation=10.0, entity_segmentation=10.0, semantic_segmentation=10.0, pose=10.0
    )
    weighted, _ = make_params("weighted", steps=1, foreground_weights=heavy)
    first_plain = train(plain, loader)["first_loss"]
    first_weighted = train(weighted, loader)["first_loss"]
    assert first_weighted > first_plain  # the same batch, its drawn pixels counted ten times

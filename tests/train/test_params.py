"""The `train` params section: validation, loader overrides, the run digest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from dicepipe.config import ConfigError, load_params
from dicepipe.params import schema
from dicepipe.params.loader import LoaderParams
from dicepipe.params.train import TrainParams
from dicepipe.train.build import loader_params, mixed_precision, model_config, run_digest

REPO = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, train: dict) -> TrainParams:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": train}))
    return load_params(TrainParams, path)


def test_the_project_params_are_valid_and_registered():
    params = load_params(TrainParams, REPO / "params.yaml")
    assert (
        schema("train") is TrainParams and load_params(TrainParams, REPO / "params.yaml") == params
    )
    assert params.preset == "tiny" and params.pretrained is None


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"steps": 0}, "train.steps: 0 is below the minimum 1"),
        ({"lr": 0.0}, "lr > 0"),
        ({"lr": "fast"}, "expected float"),
        ({"grad_accum": 0}, "train.grad_accum"),
        ({"mixed_precision": "fp8"}, "choose one of 'auto', 'no', 'bf16', 'fp16'"),
        ({"preset": "large"}, "train.preset"),
        ({"learning_rate": 1e-4}, "unknown key 'learning_rate'"),
        ({"flow": {"prompt_dropout": 1.5}}, "train.flow.prompt_dropout"),
        ({"flow": {"weighting_scheme": "uniform"}}, "train.flow.weighting_scheme"),
        ({"model": {"num_layers": 0}}, "model.num_layers must be >= 1"),
        ({"preset": "sd3-medium"}, "sd3-medium needs pretrained"),
        ({"pretrained": "sd3", "model": {"num_layers": 2}}, "overrides only without pretrained"),
        ({"resume": ""}, "resume is null, latest or a path"),
        ({"resolution": 4}, "train.resolution: 4 is below the minimum 8"),
        ({"threads": 0}, "train.threads: 0 is below the minimum 1"),
        ({"resolution": None}, None),
    ],
)
def test_bad_values_name_the_key_and_the_rule(tmp_path, train, message):
    if message is None:  # an optional bound accepts null
        assert _load(tmp_path, train).resolution is None
        return
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, train)


def test_the_train_section_overrides_the_loader_where_set():
    loader = LoaderParams(batch_size=8, num_workers=2, resolution=256)
    merged = loader_params(TrainParams(batch_size=2, resolution=64), loader)
    assert (merged.batch_size, merged.num_workers, merged.resolution) == (2, 2, 64)
    assert loader_params(TrainParams(), loader) == loader


def test_the_run_digest_ignores_run_control_but_not_what_is_computed():
    loader, base = LoaderParams(), TrainParams()
    same = dataclasses.replace(base, steps=9, checkpoint_every=7, resume="latest", threads=1)
    assert run_digest(same, loader) == run_digest(base, loader)
    assert run_digest(dataclasses.replace(base, lr=1e-4), loader) != run_digest(base, loader)
    other_loader = dataclasses.replace(loader, seed=1)
    assert run_digest(base, other_loader) != run_digest(base, loader)


def test_model_overrides_change_the_preset():
    config = model_config(_overrides(num_layers=1, task_token_length=3))
    assert config["transformer_config"]["num_layers"] == 1 and config["task_token_length"] == 3
    assert config["transformer_config"]["patch_size"] == 4  # the tiny preset's


def _overrides(**values: int) -> TrainParams:
    from dicepipe.params.train import ModelOverrides

    return TrainParams(model=ModelOverrides(**values))


def test_mixed_precision_auto_is_bf16_on_cuda_only():
    assert mixed_precision("auto", cuda=True) == "bf16"
    assert mixed_precision("auto", cuda=False) == "no"
    assert mixed_precision("fp16", cuda=True) == "fp16"


@pytest.mark.parametrize(
    ("resolution", "message"),
    [
        (18, "train.resolution: resolution 18 is not a multiple of 4"),
        (256, "train.resolution: .* pos_embed_max_size is 32"),
        # train.resolution null: the loader's 512 is the one that trains, and is checked
        (None, "loader.resolution: resolution 512 gives 128 patches a side"),
    ],
)
def test_a_resolution_the_model_cannot_take_fails_before_training(resolution, message):
    from dicepipe.train.build import training_resolution

    loader = LoaderParams(resolution=512)
    with pytest.raises(ConfigError, match=message):
        training_resolution(TrainParams(resolution=resolution), loader)


def test_the_effective_resolution_is_the_one_written_for_inference():
    from dicepipe.train.build import inference_info

    info = inference_info(TrainParams(resolution=None), LoaderParams(resolution=64))
    assert info["resolution"] == 64 and info["vae"] is None
    # how it was trained, which sets its sampling defaults (TrainFlowParams' defaults)
    assert info["flow"] == {"deterministic": False, "prompt_dropout": 0.1}
    with pytest.raises(ConfigError, match="both null"):
        inference_info(TrainParams(resolution=None), LoaderParams(resolution=None))


def test_the_train_stage_refuses_a_loader_resolution_the_model_cannot_take(
    tmp_path, shards, capsys
):
    from stages.train import main

    path = tmp_path / "params.yaml"
    train = {"resolution": None, "output": str(tmp_path / "run"), "metrics": str(tmp_path / "m")}
    loader = {"shards": str(shards), "resolution": 256, "num_workers": 0}
    path.write_text(yaml.safe_dump({"train": train, "loader": loader}))
    assert main(["--params", str(path)]) == 2
    assert capsys.readouterr().err == (
        "error: loader.resolution: resolution 256 gives 64 patches a side; "
        "the transformer's pos_embed_max_size is 32\n"
    )

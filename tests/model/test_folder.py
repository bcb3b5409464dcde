"""The one reader of model folders: what a good folder gives, sharded weights, and the fault
named for each kind of broken folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dicepipe.config import ConfigError
from dicepipe.model.folder import (
    INFERENCE_FILE,
    WEIGHTS_INDEX,
    ModelFolderError,
    load_model_folder,
    read_model_folder,
    sampling_mismatches,
    trained_sampling,
)

from .bad_folders import BAD_FOLDERS, break_folder
from .conftest import SIZE, make_model


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good") / "model"
    make_model().save_pretrained(str(folder))
    (folder / INFERENCE_FILE).write_text(json.dumps({"resolution": SIZE, "vae": None}))
    return folder


def test_a_good_folder_gives_its_config_resolution_and_cell(good):
    checked = read_model_folder(good)
    assert checked.resolution == SIZE and checked.vae is None and checked.prompts is None
    assert checked.cell == 2 and checked.config["_class_name"] == "DiceptionModel"
    loaded = load_model_folder(good, "cpu", resolution=8)
    assert loaded.resolution == 8 and loaded.tasks == list(make_model().tasks)
    assert not loaded.model.training


def test_sharded_weights_are_checked_shard_by_shard(tmp_path):
    folder = tmp_path / "model"
    make_model().save_pretrained(str(folder), max_shard_size="20KB")
    (folder / INFERENCE_FILE).write_text(json.dumps({"resolution": SIZE}))
    assert (folder / WEIGHTS_INDEX).is_file()
    assert read_model_folder(folder).resolution == SIZE
    shard = sorted(folder.glob("*-of-*.safetensors"))[1]
    shard.write_bytes(shard.read_bytes()[:-1])
    with pytest.raises(ModelFolderError, match=f"{shard}: .* truncated"):
        read_model_folder(folder)


@pytest.mark.parametrize("kind", sorted(BAD_FOLDERS))
def test_each_broken_kind_raises_one_error_type_naming_the_file(good, tmp_path, kind):
    named, message = break_folder(good, tmp_path / "model", kind)
    with pytest.raises(ModelFolderError) as error:
        read_model_folder(tmp_path / "model")
    assert named in str(error.value) and message in str(error.value)
    assert isinstance(error.value, ConfigError)  # the stage entries' exit-2 error type


@pytest.mark.parametrize(
    ("flow", "one_step", "guidance"),
    [
        ({"deterministic": True, "prompt_dropout": 0.0}, True, 1.0),  # params.yaml
        ({"deterministic": True, "prompt_dropout": 0.1}, True, 1.0),
        ({"deterministic": False, "prompt_dropout": 0.1}, False, 2.0),  # params.paper.yaml
        ({"deterministic": False, "prompt_dropout": 0.0}, False, 1.0),
    ],
)
def test_the_training_record_gives_the_sampling(flow, one_step, guidance):
    trained = trained_sampling({"resolution": 64, "flow": flow})
    assert trained is not None
    assert (trained.one_step, trained.guidance) == (one_step, guidance)
    assert sampling_mismatches({"flow": flow}, one_step, guidance) == []


def test_sampling_against_the_training_names_each_mismatch():
    one_step = {"flow": {"deterministic": True, "prompt_dropout": 0.0}}
    (steps, guidance) = sampling_mismatches(one_step, False, 2.0)
    assert "trained in the one-step mode" in steps and "sample in one step" in steps
    assert "guidance 2 mixes in" in guidance and "prompt_dropout 0" in guidance
    many = {"flow": {"deterministic": False, "prompt_dropout": 0.1}}
    (single,) = sampling_mismatches(many, True, 2.0)
    assert "trained for many-step flow matching" in single
    assert trained_sampling({"resolution": 64}) is None  # no record: nothing to say
    assert sampling_mismatches({"resolution": 64}, True, 3.0) == []

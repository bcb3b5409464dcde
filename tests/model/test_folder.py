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

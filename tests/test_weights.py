"""Weights resolution: local folders, the local HF cache only, and the missing-weights error."""

import pytest

from dicepipe.weights import (
    MissingWeightsError,
    resolve_dtype,
    resolve_weights,
    weights_digest,
)


def test_local_folder_is_used_as_is(tmp_path):
    assert resolve_weights(tmp_path) == tmp_path


def test_missing_hub_checkpoint_says_how_to_get_it(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        resolve_weights("apple/DepthPro-hf", cache_dir=tmp_path, param="label.weights")
    message = str(info.value)
    assert "not in the local Hugging Face cache" in message and str(tmp_path) in message
    assert "hf download apple/DepthPro-hf --local-dir weights/DepthPro-hf" in message
    assert "label.weights: weights/DepthPro-hf" in message
    assert "label.allow_download: true" in message


def test_missing_local_folder_names_the_folder_and_param(tmp_path):
    folder = tmp_path / "nothing" / "here"
    with pytest.raises(MissingWeightsError) as info:
        resolve_weights(folder, param="label.weights")
    message = str(info.value)
    assert repr(str(folder)) in message and "label.weights" in message
    assert f"--local-dir {folder}" in message


def test_a_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="must be the checkpoint's folder"):
        resolve_weights(path)


def test_hub_id_found_in_local_cache_without_network(tmp_path):
    repo = tmp_path / "models--org--tiny"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    assert resolve_weights("org/tiny", cache_dir=tmp_path) == snapshot


def test_digest_covers_safetensors_names_and_bytes(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.safetensors").write_bytes(b"one")
    (tmp_path / "config.json").write_text("{}")
    first = weights_digest(tmp_path)
    assert len(first) == 12 and first == weights_digest(tmp_path)
    (tmp_path / "sub" / "a.safetensors").write_bytes(b"two")
    assert weights_digest(tmp_path) != first
    with pytest.raises(MissingWeightsError, match="safetensors"):
        weights_digest(tmp_path / "sub" / "missing")


def test_dtype_auto_is_fp32_on_cpu():
    import torch

    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int8", torch.device("cpu"))

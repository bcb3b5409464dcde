"""Few-shot LoRA: only the adapter and the new task row train, the adapter round-trips."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from dicepipe.model import DiceptionModel
from dicepipe.params.finetune import FinetuneParams
from dicepipe.train.finetune import finetune, make_pairs, pick_images

from .conftest import SIDE, TEST_MODEL


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("base") / "model"
    overrides = {k: v for k, v in vars(TEST_MODEL).items() if v is not None}
    extra = {k: overrides.pop(k) for k in ("task_token_length", "point_frequencies")}
    config = {"sample_size": SIDE // 2, "in_channels": 3, "out_channels": 3, **overrides}
    torch.manual_seed(0)
    DiceptionModel(transformer_config=config, **extra).save_pretrained(str(folder))
    (folder / "inference.json").write_text(json.dumps({"resolution": SIDE}))
    return str(folder)


def _params(tmp_path, base, shards, **changes) -> FinetuneParams:
    values = dict(
        base=base,
        shards=str(shards),
        sources=("synthetic",),
        examples=8,
        heldout=2,
        rank=4,
        steps=30,
        batch_size=4,
        lr=1e-3,
        output=str(tmp_path / "out"),
        metrics=str(tmp_path / "finetune.json"),
        threads=1,
    )
    return FinetuneParams(**{**values, **changes})


def test_pairs_are_darkened_inputs_of_distinct_seeded_images(tmp_path, base, shards):
    params = _params(tmp_path, base, shards)
    images = pick_images(params, 10)
    assert len({key for key, _ in images}) == 10 and images == pick_images(params, 10)
    pairs = make_pairs(images, params, SIDE)
    assert pairs["image"].shape == (10, 3, SIDE, SIDE)
    assert (pairs["image"].mean() < pairs["target"].mean()).item()
    with pytest.raises(ValueError, match="finetune needs 1000 images"):
        pick_images(params, 1000)


def test_finetune_trains_only_the_adapter_and_reloads_it_exactly(tmp_path, base, shards):
    params = _params(tmp_path, base, shards)
    summary = finetune(params)
    assert 0 < summary["trainable_fraction"] < 1
    assert summary["loss_last"] < summary["loss_first"]
    assert summary["reload_max_abs_diff"] == 0.0
    lora = tmp_path / "out" / "lora"
    assert (lora / "pytorch_lora_weights.safetensors").is_file()
    assert (lora / "task_embedding.safetensors").is_file()
    assert (tmp_path / "out" / "loss.png").stat().st_size > 1000
    assert json.loads((tmp_path / "finetune.json").read_text())["task"] == "highlight"
    assert {"heldout_psnr", "identity_psnr"} <= set(summary)
    assert summary["task_init"] == "mean_of_task_rows" and summary["mixed_precision"] == "no"
    # the base folder is untouched: its weights load without any adapter
    untouched = DiceptionModel.from_pretrained(base)
    assert "highlight" not in untouched.tasks


def test_a_learned_table_starts_the_new_row_at_the_mean_of_its_task_rows(tmp_path, base, shards):
    from dicepipe.model.folder import load_model_folder
    from dicepipe.train.finetune import prepare_model

    loaded = load_model_folder(base, "cpu")
    table = loaded.model.task_table
    mean = torch.stack(list(table.tokens)).mean(0)
    task_id, how = prepare_model(loaded, _params(tmp_path, base, shards))
    assert how == "mean_of_task_rows"
    assert torch.equal(table.tokens[task_id].detach(), mean) and table.tokens[task_id].requires_grad


@pytest.fixture(scope="module")
def latent_base(tmp_path_factory) -> str:
    """A latent model folder made from a tiny SD3 folder as the trainer saves one."""
    from dicepipe.train.build import prompt_cache
    from dicepipe.train.checkpoints import save_model_folder
    from tests.train.test_pretrained import _tiny_sd3_folder

    root = tmp_path_factory.mktemp("latent")
    sd3 = _tiny_sd3_folder(root / "sd3")
    model = DiceptionModel.from_transformer(sd3)
    cache = prompt_cache(sd3, root / "cache")
    model.load_task_embeddings(cache)
    info = {"resolution": SIDE, "vae": str(sd3 / "vae"), "prompts": str(cache)}
    save_model_folder(model, root / "model", info)
    shutil.rmtree(sd3)  # the model folder needs nothing from it
    return str(root / "model")


def test_finetune_runs_on_a_latent_base_in_bf16_with_checkpointing(tmp_path, latent_base, shards):
    from dicepipe.model import load_lora, load_prompt_cache

    params = _params(
        tmp_path,
        latent_base,
        shards,
        steps=3,
        heldout=1,
        mixed_precision="bf16",
        gradient_checkpointing=True,
    )
    summary = finetune(params)
    assert summary["space"] == "latent" and summary["mixed_precision"] == "bf16"
    assert summary["task_init"] == "text_encoder" and summary["reload_max_abs_diff"] == 0.0
    assert np.isfinite(summary["loss_last"]) and np.isfinite(summary["heldout_psnr"])
    fresh = DiceptionModel.from_pretrained(latent_base)
    task = load_lora(fresh, tmp_path / "out" / "lora")
    tokens, pooled = load_prompt_cache(f"{latent_base}/prompts.safetensors")["highlight"]
    assert torch.equal(fresh.task_table.tokens[task], tokens)  # the prompt's own encoding
    assert torch.equal(fresh.task_table.pooled[task], pooled)


def test_a_broken_base_or_resolution_is_a_clear_error(tmp_path, base, shards):
    from dicepipe.model.folder import ModelFolderError

    with pytest.raises(ModelFolderError, match="finetune.resolution: resolution 17 is not a"):
        finetune(_params(tmp_path, base, shards, resolution=17))
    with pytest.raises(ModelFolderError, match=f"model folder {tmp_path / 'none'} does not exist"):
        finetune(_params(tmp_path, str(tmp_path / "none"), shards))

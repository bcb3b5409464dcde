"""`train.pretrained`: a (tiny, random) SD3 folder trains in its VAE's latent space with its
text encoders' task prompts, encoded once and cached."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKL, SD3Transformer2DModel

from dicepipe.cli import main
from dicepipe.model import DiceptionModel, load_prompt_cache
from dicepipe.model.folder import CARD_FILE, INFERENCE_FILE, PROMPTS_FILE, WEIGHTS_FILE
from dicepipe.model.inference import load_checkpoint
from dicepipe.params.train import ModelOverrides
from dicepipe.train.loop import train
from tests.model.test_inference import PHOTO
from tests.model.test_prompts import _tiny_sd3_text_folder


def _tiny_sd3_folder(folder: Path) -> Path:
    _tiny_sd3_text_folder(folder)  # CLIP-L/G of width 8, T5 of width 32
    torch.manual_seed(0)
    SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        caption_projection_dim=16,
        pooled_projection_dim=16,
        pos_embed_max_size=16,
    ).save_pretrained(folder / "transformer")
    AutoencoderKL(
        block_out_channels=(4, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=16,
        norm_num_groups=1,
    ).save_pretrained(folder / "vae")
    return folder


def test_pretrained_trains_in_latent_space_with_frozen_prompts(make_params, tmp_path, monkeypatch):
    monkeypatch.setenv("DICEPIPE_CACHE", str(tmp_path / "cache"))
    folder = _tiny_sd3_folder(tmp_path / "sd3")
    params, loader = make_params(pretrained=str(folder), model=ModelOverrides(), steps=2)
    summary = train(params, loader)

    assert summary["trainable_parameters"] < summary["parameters"]  # the prompt table is frozen
    assert len(list((tmp_path / "cache" / "prompts").glob("*.safetensors"))) == 1
    model = DiceptionModel.from_pretrained(Path(params.output) / "model")
    assert model.config.space == "latent" and model.config.frozen_task_table
    assert model.transformer.config.in_channels == 16
    loaded = load_checkpoint(Path(params.output) / "model", device="cpu")
    assert loaded.checked.info["vae"] == "vae" and loaded.resolution == 16
    assert hasattr(loaded.space, "vae")


def test_foreground_weights_reach_the_latent_loss(make_params, tmp_path, monkeypatch):
    from dicepipe.params.train import ForegroundWeights

    monkeypatch.setenv("DICEPIPE_CACHE", str(tmp_path / "cache"))
    folder = str(_tiny_sd3_folder(tmp_path / "sd3"))
    heavy = ForegroundWeights(
        point_segmentation=10.0, entity_segmentation=10.0, semantic_segmentation=10.0, pose=10.0
    )
    plain, loader = make_params("plain", pretrained=folder, model=ModelOverrides(), steps=1)
    weighted, _ = make_params(
        "weighted", pretrained=folder, model=ModelOverrides(), steps=1, foreground_weights=heavy
    )
    first_plain = train(plain, loader)["first_loss"]
    first_weighted = train(weighted, loader)["first_loss"]
    assert first_weighted > first_plain  # pixel weights max-pooled onto the 8x-smaller grid


def test_a_trained_latent_model_folder_is_self_contained(make_params, tmp_path, monkeypatch):
    """The folder holds its VAE, its prompts and its card: moved elsewhere, with the SD3
    folder and the training checkout gone, it still predicts."""
    monkeypatch.setenv("DICEPIPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    folder = _tiny_sd3_folder(tmp_path / "sd3")
    params, loader = make_params(pretrained="sd3", model=ModelOverrides(), steps=2)
    train(params, loader)
    trained = Path(params.output) / "model"
    assert filecmp.cmp(trained / "vae" / WEIGHTS_FILE, folder / "vae" / WEIGHTS_FILE, False)
    prompts = load_prompt_cache(trained / PROMPTS_FILE)
    assert {"depth", "highlight", ""} <= set(prompts)  # every registry task, new ones too
    info = json.loads((trained / INFERENCE_FILE).read_text())
    assert info["vae"] == "vae" and info["prompts"] == PROMPTS_FILE
    assert "sd3" not in json.dumps(info)  # names nothing outside the folder
    card = (trained / CARD_FILE).read_text()
    assert '"pretrained": "sd3"' in card and f"- steps: {params.steps}" in card

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = shutil.move(str(trained), elsewhere / "model")
    shutil.rmtree(folder)
    shutil.rmtree(params.output)
    monkeypatch.chdir(elsewhere)
    args = ["predict", "--checkpoint", str(moved), "--task", "depth", "--steps", "1"]
    assert main([*args, "--out", "out", str(PHOTO)]) == 0
    assert (elsewhere / "out" / "grace_hopper.depth.png").stat().st_size > 0

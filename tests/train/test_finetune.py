"""Few-shot LoRA: only the adapter and the new task row train, the adapter round-trips."""

from __future__ import annotations

import json

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
    # the base folder is untouched: its weights load without any adapter
    untouched = DiceptionModel.from_pretrained(base)
    assert "highlight" not in untouched.tasks

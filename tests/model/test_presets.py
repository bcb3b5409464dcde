"""Size presets and parameter counts on the meta device; LoRA share of SD3-medium."""

from __future__ import annotations

import torch

from dicepipe.model import (
    DiceptionModel,
    add_lora,
    count_parameters,
    preset,
    preset_parameters,
    trainable_fraction,
    transformer_parameters,
)


def test_tiny_preset_is_pixel_space_and_small() -> None:
    spec = preset("tiny")
    assert spec["space"] == "pixel" and spec["transformer_config"]["in_channels"] == 3
    assert 1e6 < transformer_parameters("tiny") < 5e6
    assert preset_parameters("tiny") > transformer_parameters("tiny")


def test_sd3_medium_is_2b_on_meta() -> None:
    assert preset("sd3-medium")["space"] == "latent"
    assert 2.0e9 < transformer_parameters("sd3-medium") < 2.05e9


def test_sd3_medium_lora_rank_128_share() -> None:
    with torch.device("meta"):
        model = DiceptionModel.from_preset("sd3-medium")
        add_lora(model, rank=128)
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    # to_q, to_k, to_v (1536 -> 1536) in 24 blocks: 2 * 128 * 1536 parameters each.
    assert lora == 24 * 3 * 2 * 128 * 1536
    assert count_parameters(model, trainable_only=True) == lora
    # 1.37% of the 2B transformer; the paper's "< 1%" holds against the whole SD3-medium
    # (CLIP-L 124M + CLIP-G 695M + T5-XXL 4.76B + VAE 84M + transformer 2.03B = 7.7B).
    assert 0.013 < trainable_fraction(model) < 0.014
    assert lora / (count_parameters(model) + 5.66e9) < 0.01

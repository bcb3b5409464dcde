"""Size presets: SD3Transformer2DModel configs plus the space the model works in."""

from __future__ import annotations

import copy
from typing import Any

import torch
from diffusers import SD3Transformer2DModel

PRESETS: dict[str, dict[str, Any]] = {
    # Pixel space, CPU-sized: 64x64 RGB -> 16x16 patches of 4; pos_embed covers 128x128.
    # The input image is added to the noisy tokens (``condition: channels``): from scratch it
    # learns in minutes what DICEPTION's separate image tokens take hours to.
    "tiny": {
        "space": "pixel",
        "condition": "channels",
        "point_map": True,
        "transformer_config": {
            "sample_size": 16,
            "patch_size": 4,
            "in_channels": 3,
            "out_channels": 3,
            "num_layers": 4,
            "attention_head_dim": 32,
            "num_attention_heads": 4,
            "joint_attention_dim": 64,
            "caption_projection_dim": 128,
            "pooled_projection_dim": 64,
            "pos_embed_max_size": 32,
        },
    },
    # The published Stable Diffusion 3 medium transformer (2B), SD3 VAE latents.
    "sd3-medium": {
        "space": "latent",
        "condition": "sequence",
        "transformer_config": {
            "sample_size": 128,
            "patch_size": 2,
            "in_channels": 16,
            "out_channels": 16,
            "num_layers": 24,
            "attention_head_dim": 64,
            "num_attention_heads": 24,
            "joint_attention_dim": 4096,
            "caption_projection_dim": 1536,
            "pooled_projection_dim": 2048,
            "pos_embed_max_size": 192,
        },
    },
}


def preset(name: str) -> dict[str, Any]:
    """Return a deep copy of the named preset (``{"space": ..., "transformer_config": {...}}``)."""
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def count_parameters(module: torch.nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (works on meta tensors)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def transformer_parameters(name: str) -> int:
    """Parameters of a preset's SD3 transformer, built on the meta device (nothing allocated)."""
    with torch.device("meta"):
        model = SD3Transformer2DModel(**preset(name)["transformer_config"])
    return count_parameters(model)

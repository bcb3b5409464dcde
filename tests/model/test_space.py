"""Pixel and VAE latent spaces."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL

from dicepipe.model import FlowConfig, LatentSpace, flow_matching_loss, make_space, predict

from .conftest import TEST_TRANSFORMER, make_batch, make_model


def _vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=(4, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=16,
        norm_num_groups=1,
        shift_factor=0.1,
        scaling_factor=1.5,
    )


def test_latent_space_shift_and_scale() -> None:
    vae = _vae()
    space = LatentSpace(vae)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    z = space.encode(images)
    mode = vae.encode(images).latent_dist.mode()
    torch.testing.assert_close(z, (mode - 0.1) * 1.5)
    assert z.shape == (2, 16, 8, 8)
    assert space.decode(z).shape == images.shape


def test_make_space_needs_a_vae_for_latents(tmp_path) -> None:
    config = {"transformer_config": dict(TEST_TRANSFORMER, in_channels=16, out_channels=16)}
    with pytest.raises(ValueError):
        make_space(config)
    _vae().save_pretrained(tmp_path / "vae")
    assert isinstance(make_space(config, tmp_path), LatentSpace)


def test_latent_training_and_sampling() -> None:
    model = make_model(transformer_config=dict(TEST_TRANSFORMER, in_channels=16, out_channels=16))
    space = LatentSpace(_vae())
    batch = make_batch(2, side=32)
    generator = torch.Generator().manual_seed(0)
    loss, per = flow_matching_loss(model, space, batch, generator=generator, config=FlowConfig())
    loss.backward()
    assert per.shape == (2,) and torch.isfinite(loss)
    out = predict(
        model,
        space,
        batch["image"],
        batch["task_id"],
        batch["points"],
        batch["point_mask"],
        steps=2,
        generator=generator,
    )
    assert out.shape == (2, 3, 32, 32)

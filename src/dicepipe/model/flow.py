"""Rectified-flow training loss, as diffusers' SD3 training scripts compute it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.training_utils import (
    compute_density_for_timestep_sampling,
    compute_loss_weighting_for_sd3,
)

from .diception import DiceptionModel
from .space import Space


@dataclass(frozen=True)
class FlowConfig:
    """Timestep density, SD3 schedule shift (3.0: SD3-medium's scheduler) and CFG dropout.

    ``deterministic``: the one-step mode the D3-Predictor and Lotus papers argue for: every
    sample sits at t = 1 with zero noise, so the model regresses the target directly
    (v = -x0) and ``predict(..., one_step=True)`` reads it out in a single step.
    """

    weighting_scheme: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    shift: float = 3.0
    prompt_dropout: float = 0.1
    point_dropout: float = 0.1
    num_train_timesteps: int = 1000
    deterministic: bool = False


@lru_cache(maxsize=8)
def _schedule(num_train_timesteps: int, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=num_train_timesteps, shift=shift
    )
    return scheduler.timesteps.clone(), scheduler.sigmas.clone()


def sample_timesteps(
    batch_size: int, *, generator: torch.Generator, config: FlowConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Timesteps (scheduler units) and sigmas (B,), on the generator's device."""
    u = compute_density_for_timestep_sampling(
        weighting_scheme=config.weighting_scheme,
        batch_size=batch_size,
        logit_mean=config.logit_mean,
        logit_std=config.logit_std,
        mode_scale=config.mode_scale,
        device=generator.device,
        generator=generator,
    )
    timesteps, sigmas = _schedule(config.num_train_timesteps, config.shift)
    # sigmoid can round to exactly 1.0 in fp32, one past the last index.
    indices = (u * config.num_train_timesteps).long().clamp(0, config.num_train_timesteps - 1)
    indices = indices.cpu()
    return timesteps[indices], sigmas[indices]


def flow_matching_loss(
    model: DiceptionModel,
    space: Space,
    batch: dict[str, Any],
    *,
    generator: torch.Generator,
    config: FlowConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss, per-sample loss (B,)) of velocity MSE on the noisy tokens.

    ``batch``: ``image``/``target`` (B, 3, H, W) in [-1, 1], ``points`` (B, 5, 2),
    ``point_mask`` (B, 5) bool, ``task_id`` (B,) long, and optionally ``pixel_weight``
    (B, 1, H, W): a loss multiplier per target pixel (`foreground_weight_map`), max-pooled to
    the model space's grid. All randomness (timesteps, noise, prompt/point dropout) is drawn
    from ``generator``, on its own device, in that order.
    """
    device, dtype = model.device, model.dtype
    x0 = space.encode(batch["target"].to(device)).float()
    condition = space.encode(batch["image"].to(device))
    size = x0.shape[0]

    timesteps, sigmas = sample_timesteps(size, generator=generator, config=config)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device)
    drop_prompt = torch.rand(size, generator=generator, device=generator.device)
    drop_points = torch.rand(size, generator=generator, device=generator.device)

    if config.deterministic:
        timesteps = torch.full_like(timesteps, float(config.num_train_timesteps))
        sigmas, noise = torch.ones_like(sigmas), torch.zeros_like(noise)
    sigmas = sigmas.to(device).reshape(-1, 1, 1, 1)
    noise = noise.to(device)
    noisy = (1.0 - sigmas) * x0 + sigmas * noise
    prediction = model(
        noisy.to(dtype),
        condition.to(dtype),
        timesteps.to(device),
        batch["task_id"].to(device),
        batch["points"].to(device),
        batch["point_mask"].to(device),
        drop_prompt=drop_prompt.to(device) < config.prompt_dropout,
        drop_points=drop_points.to(device) < config.point_dropout,
    )
    target = noise - x0
    weighting = compute_loss_weighting_for_sd3(config.weighting_scheme, sigmas).float()
    if batch.get("pixel_weight") is not None:
        weighting = weighting * pooled_to(batch["pixel_weight"].to(device).float(), x0.shape[-2:])
    per_sample = (weighting * (prediction.float() - target) ** 2).reshape(size, -1).mean(1)
    return per_sample.mean(), per_sample


#: Target pixels with a channel above this value (13 of 255) are foreground.
FOREGROUND_LEVEL = -0.9


def foreground_weight_map(target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) loss multipliers: ``weights[b]`` on the foreground pixels of target ``b``
    ((B, 3, H, W) in [-1, 1]; any channel above black), 1 on its black background.

    Sparse targets (pose skeletons, small masks) are mostly background, so a plain mean
    lets a model settle on black; weighting the drawn pixels keeps their error in sight.
    """
    foreground = (target > FOREGROUND_LEVEL).any(dim=1, keepdim=True)
    per_sample = weights.to(target.device, torch.float32).reshape(-1, 1, 1, 1)
    return torch.where(foreground, per_sample, torch.ones_like(per_sample))


def pooled_to(weight: torch.Tensor, size: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """A (B, 1, H, W) pixel weight on the model space's (h, w) grid: the largest weight of the
    pixels each latent cell covers (the identity in pixel space)."""
    if tuple(weight.shape[-2:]) == tuple(size):
        return weight
    return torch.nn.functional.adaptive_max_pool2d(weight, tuple(size))

"""Inference: Euler flow sampling with classifier-free guidance, or one deterministic step."""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from .diception import DiceptionModel
from .space import Space


def _velocity(
    model: DiceptionModel,
    x: torch.Tensor,
    condition: torch.Tensor,
    timestep: torch.Tensor,
    task_ids: torch.Tensor,
    points: torch.Tensor,
    point_mask: torch.Tensor,
    guidance: float,
) -> torch.Tensor:
    """Guided velocity; the unconditional half uses the empty prompt and no points."""
    dtype, size = model.dtype, x.shape[0]
    if guidance == 1.0:
        return model(x.to(dtype), condition, timestep, task_ids, points, point_mask).float()
    drop = torch.cat([torch.zeros(size, dtype=torch.bool), torch.ones(size, dtype=torch.bool)])
    drop = drop.to(x.device)
    both = model(
        torch.cat([x, x]).to(dtype),
        torch.cat([condition, condition]),
        timestep,
        torch.cat([task_ids, task_ids]),
        torch.cat([points, points]),
        torch.cat([point_mask, point_mask]),
        drop_prompt=drop,
        drop_points=drop,
    ).float()
    conditional, unconditional = both.chunk(2)
    return unconditional + guidance * (conditional - unconditional)


@torch.no_grad()
def predict(
    model: DiceptionModel,
    space: Space,
    images: torch.Tensor,
    task_ids: torch.Tensor,
    points: torch.Tensor,
    point_mask: torch.Tensor,
    *,
    steps: int = 28,
    guidance: float = 2.0,
    shift: float = 3.0,
    one_step: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Predict task images (B, 3, H, W) in [-1, 1] for input images (B, 3, H, W) in [-1, 1].

    ``one_step``: a single deterministic step from zero noise at t = 1 (x0 = x1 - v), with the
    same guidance rule; otherwise ``steps`` Euler steps of FlowMatchEulerDiscreteScheduler from
    Gaussian noise drawn from ``generator`` (on its device).
    """
    device, dtype = model.device, model.dtype
    condition = space.encode(images.to(device)).to(dtype)
    task_ids, points, point_mask = task_ids.to(device), points.to(device), point_mask.to(device)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return _velocity(model, x, condition, t, task_ids, points, point_mask, guidance)

    if one_step:
        x = torch.zeros(condition.shape, device=device)
        t = torch.tensor(1000.0, device=device)
        x = x - velocity(x, t)
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
        scheduler.set_timesteps(steps, device=device)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        x = torch.randn(condition.shape, generator=generator, device=gen_device).to(device)
        for t in scheduler.timesteps:
            v = velocity(x, t)
            x = scheduler.step(v, t, x).prev_sample
    return space.decode(x.to(dtype)).float().clamp(-1.0, 1.0)

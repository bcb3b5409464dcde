"""Rectified-flow loss: noisy tokens only, conventions, determinism, overfitting."""

from __future__ import annotations

from dataclasses import replace

import torch

from dicepipe.model import (
    DiceptionModel,
    FlowConfig,
    PixelSpace,
    flow_matching_loss,
    foreground_weight_map,
)
from dicepipe.model.flow import pooled_to

from .conftest import make_batch, make_model

CONFIG = FlowConfig()


def _loss(model: DiceptionModel, batch: dict, seed: int = 0, config: FlowConfig = CONFIG):
    generator = torch.Generator().manual_seed(seed)
    return flow_matching_loss(model, PixelSpace(), batch, generator=generator, config=config)


def test_output_shape_is_noisy_shape(model: DiceptionModel, batch: dict) -> None:
    noisy = torch.randn(4, 3, 16, 16)
    out = model(
        noisy, batch["image"], 500.0, batch["task_id"], batch["points"], batch["point_mask"]
    )
    assert out.shape == noisy.shape


def test_loss_ignores_condition_tokens(model: DiceptionModel, batch: dict) -> None:
    num_noisy = (16 // 2) ** 2
    last = model.transformer.transformer_blocks[-1]
    base, per = _loss(model, batch)
    assert per.shape == (4,)

    def perturb(start: int, stop: int | None):
        def hook(module, args, output):
            context, hidden = output
            hidden = hidden.clone()
            # Random, not constant: norm_out's LayerNorm would cancel a constant shift.
            noise = torch.randn(hidden[:, start:stop].shape, generator=torch.Generator())
            hidden[:, start:stop] += noise
            return context, hidden

        return last.register_forward_hook(hook)

    handle = perturb(num_noisy, None)
    _, per_condition = _loss(model, batch)
    handle.remove()
    torch.testing.assert_close(per_condition, per)

    handle = perturb(0, num_noisy)
    _, per_noisy = _loss(model, batch)
    handle.remove()
    assert not torch.allclose(per_noisy, per)


def test_loss_depends_on_target_per_sample(model: DiceptionModel, batch: dict) -> None:
    _, per = _loss(model, batch)
    changed = dict(batch, target=batch["target"].clone())
    changed["target"][0] = -changed["target"][0]
    _, per_changed = _loss(model, changed)
    assert not torch.isclose(per_changed[0], per[0])
    torch.testing.assert_close(per_changed[1:], per[1:])


class _Oracle(torch.nn.Module):
    """Returns the exact velocity noise - x0 recovered from x_t, sigma = t / 1000 and x0."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.x0 = x0

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self.anchor.dtype

    def forward(self, noisy, condition, timestep, *args, **kwargs):
        sigma = (timestep / 1000.0).reshape(-1, 1, 1, 1)
        return (noisy - self.x0) / sigma


def test_flow_conventions_oracle_has_zero_loss(batch: dict) -> None:
    loss, _ = _loss(_Oracle(batch["target"]), batch)  # type: ignore[arg-type]
    assert loss.item() < 1e-6


def test_same_seed_same_loss(model: DiceptionModel, batch: dict) -> None:
    a, per_a = _loss(model, batch, seed=1)
    b, per_b = _loss(model, batch, seed=1)
    c, _ = _loss(model, batch, seed=2)
    assert torch.equal(per_a, per_b) and a.item() == b.item()
    assert a.item() != c.item()


def test_full_dropout_ignores_task_and_points(model: DiceptionModel, batch: dict) -> None:
    config = replace(CONFIG, prompt_dropout=1.0, point_dropout=1.0)
    other = dict(batch, task_id=(batch["task_id"] + 1) % 3, points=torch.rand(4, 5, 2))
    other["point_mask"] = torch.ones_like(batch["point_mask"])
    torch.testing.assert_close(
        _loss(model, batch, config=config), _loss(model, other, config=config)
    )
    _, per_kept = _loss(model, other, config=replace(CONFIG, prompt_dropout=0.0, point_dropout=0.0))
    assert not torch.allclose(per_kept, _loss(model, batch, config=config)[1])


def test_gradient_checkpointing_same_loss(model: DiceptionModel, batch: dict) -> None:
    model.train()
    loss, _ = _loss(model, batch)
    loss.backward()
    grad = model.transformer.proj_out.weight.grad.clone()
    model.zero_grad()
    model.enable_gradient_checkpointing()
    loss_ckpt, _ = _loss(model, batch)
    loss_ckpt.backward()
    torch.testing.assert_close(loss_ckpt, loss)
    torch.testing.assert_close(model.transformer.proj_out.weight.grad, grad)


def test_overfits_one_batch() -> None:
    model = make_model(seed=1).train()
    batch = make_batch(4, seed=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    losses = []
    for _ in range(200):
        # A fixed generator state fixes noise/timesteps, so the batch can be memorised.
        loss, _ = _loss(model, batch, seed=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_deterministic_mode_regresses_the_target_from_zero_at_t_one(
    model: DiceptionModel, batch: dict
) -> None:
    config = replace(CONFIG, deterministic=True, prompt_dropout=0.0, point_dropout=0.0)
    first, per_sample = _loss(model, batch, seed=0, config=config)
    second, _ = _loss(model, batch, seed=1, config=config)
    assert torch.allclose(first, second)  # no noise, no timestep draw reaches the loss
    with torch.no_grad():
        zero = torch.zeros_like(batch["target"])
        velocity = model(
            zero,
            batch["image"],
            torch.full((4,), 1000.0),
            batch["task_id"],
            batch["points"],
            batch["point_mask"],
        )
    expected = ((velocity + batch["target"]) ** 2).reshape(4, -1).mean(1)
    assert torch.allclose(per_sample, expected, atol=1e-5)


def test_foreground_weight_map_weighs_drawn_pixels_of_each_sample() -> None:
    target = torch.full((2, 3, 4, 4), -1.0)
    target[0, 0, 1, 2] = 1.0  # a red pixel
    target[1, 2, 3, 0] = -0.8  # dim blue, still above black
    target[1, 1, 0, 0] = -0.95  # within 13/255 of black: background
    weights = foreground_weight_map(target, torch.tensor([10.0, 3.0]))
    assert weights.shape == (2, 1, 4, 4)
    expected = torch.ones(2, 1, 4, 4)
    expected[0, 0, 1, 2], expected[1, 0, 3, 0] = 10.0, 3.0
    assert torch.equal(weights, expected)


def test_pixel_weight_multiplies_the_squared_error_of_its_pixels(
    model: DiceptionModel, batch: dict
) -> None:
    config = replace(CONFIG, deterministic=True, prompt_dropout=0.0, point_dropout=0.0)
    with torch.no_grad():
        velocity = model(
            torch.zeros_like(batch["target"]),
            batch["image"],
            torch.full((4,), 1000.0),
            batch["task_id"],
            batch["points"],
            batch["point_mask"],
        )
    weight = torch.ones(4, 1, 16, 16)
    weight[0, :, :8] = 5.0
    _, per_sample = _loss(model, dict(batch, pixel_weight=weight), config=config)
    squared = (velocity + batch["target"]) ** 2
    expected = (squared * weight).reshape(4, -1).mean(1)
    assert torch.allclose(per_sample, expected, atol=1e-5)
    _, plain = _loss(model, batch, config=config)
    torch.testing.assert_close(per_sample[1:], plain[1:])


def test_pixel_weight_is_max_pooled_onto_a_coarser_model_grid() -> None:
    weight = torch.ones(1, 1, 4, 4)
    weight[0, 0, 0, 1] = 7.0
    pooled = pooled_to(weight, (2, 2))
    assert pooled.tolist() == [[[[7.0, 1.0], [1.0, 1.0]]]]
    assert pooled_to(weight, (4, 4)) is weight

"""The optimizer, learning-rate schedule and weight EMA of a run, from the train params.

AdamW (torch, or bitsandbytes' 8-bit AdamW with `use_8bit_adam`), diffusers' `get_scheduler`
(warmup then constant/linear/cosine/...), diffusers' `EMAModel`. The schedule advances once
per optimizer step (not per rank or micro-batch), so `steps` means the same under any
world size or accumulation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from dicepipe.params.train import EmaParams, TrainParams

BITSANDBYTES_MISSING = (
    "train.use_8bit_adam needs bitsandbytes (pip install bitsandbytes); it is not importable "
    "here: set use_8bit_adam: false or install it"
)


def adamw_class(use_8bit: bool) -> type[torch.optim.Optimizer]:
    """torch's AdamW, or bitsandbytes' AdamW8bit; a clear error when that is missing."""
    if not use_8bit:
        return torch.optim.AdamW
    try:
        import bitsandbytes
    except ImportError as error:
        raise RuntimeError(BITSANDBYTES_MISSING) from error
    return bitsandbytes.optim.AdamW8bit


def make_optimizer(params: TrainParams, trainable: Iterable[torch.nn.Parameter]) -> Any:
    """AdamW over the trainable parameters at the peak `lr`: torch's fused kernel where every
    parameter allows it (one kernel for all tensors instead of a loop over them)."""
    weights = list(trainable)
    if params.use_8bit_adam:
        return adamw_class(True)(weights, lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.AdamW(
        weights, lr=params.lr, weight_decay=params.weight_decay, fused=can_fuse(weights)
    )


def can_fuse(weights: Iterable[torch.nn.Parameter]) -> bool:
    """Whether torch's fused AdamW takes these parameters: floating point, on the CPU or CUDA."""
    tensors = list(weights)
    return bool(tensors) and all(
        w.is_floating_point() and w.device.type in ("cpu", "cuda") for w in tensors
    )


def make_scheduler(params: TrainParams, optimizer: Any) -> Any:
    """diffusers' schedule `lr_scheduler` with `lr_warmup_steps`, over `steps` optimizer steps."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        params.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=params.lr_warmup_steps,
        num_training_steps=params.steps,
    )


def make_ema(params: EmaParams, model: torch.nn.Module) -> Any:
    """diffusers' EMAModel of the trainable parameters, or None when EMA is off."""
    if not params.enabled:
        return None
    from diffusers.training_utils import EMAModel

    return EMAModel(
        [p for p in model.parameters() if p.requires_grad],
        decay=params.decay,
        min_decay=params.min_decay,
        update_after_step=params.update_after_step,
        use_ema_warmup=params.use_ema_warmup,
        inv_gamma=params.inv_gamma,
        power=params.power,
        foreach=True,  # one kernel per update for all tensors, not a loop over them
    )


@contextmanager
def averaged_weights(ema: Any, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`model` holding the EMA weights inside the block (its own weights restored after);
    unchanged when `ema` is None."""
    if ema is None:
        yield model
        return
    trainable = [p for p in model.parameters() if p.requires_grad]
    ema.store(trainable)
    ema.copy_to(trainable)
    try:
        yield model
    finally:
        ema.restore(trainable)

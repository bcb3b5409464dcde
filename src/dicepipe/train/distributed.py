"""What differs per rank and what must agree across ranks: noise seeds, loss gathering,
weight checksums and the per-rank trace of consumed samples."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dicepipe.tasks import TASK_NAMES


def noise_generator(seed: int, rank: int, step: int, micro: int) -> torch.Generator:
    """The CPU generator of one micro-batch's flow-matching randomness.

    A function of (seed, rank, step, micro-batch) alone, so a resumed run draws the same
    timesteps, noise and dropouts as an uninterrupted one, and ranks draw different ones.
    """
    state = np.random.SeedSequence([seed, rank, step, micro, 0xF10]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class Forward:
    """The prepared (possibly DDP-wrapped) model's call with the bare model's device/dtype,
    which `flow_matching_loss` reads (DistributedDataParallel does not forward them)."""

    def __init__(self, prepared: torch.nn.Module, bare: torch.nn.Module) -> None:
        self.prepared, self.bare = prepared, bare

    @property
    def device(self) -> torch.device:
        """Device of the bare model."""
        return self.bare.device

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype of the bare model."""
        return self.bare.dtype

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Run the prepared model (gradient sync and autocast included)."""
        return self.prepared(*args, **kwargs)


def step_losses(accelerator: Any, per_sample: torch.Tensor, task_ids: torch.Tensor) -> dict:
    """Mean loss of one optimizer step over every rank's samples, overall and by task.

    Collective: every rank calls it; `task_ids` are the loader's (task registry indices).
    """
    losses = accelerator.gather(per_sample.detach().float()).cpu()
    tasks = accelerator.gather(task_ids.to(per_sample.device)).cpu()
    values = {"loss": losses.mean().item()}
    for task in tasks.unique().tolist():
        if 0 <= task < len(TASK_NAMES):
            values[f"task_loss/{TASK_NAMES[task]}"] = losses[tasks == task].mean().item()
    return values


def state_checksum(model: torch.nn.Module) -> str:
    """sha256 of a model's state dict (names, dtypes, shapes and bytes), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{value.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Trace:
    """`<folder>/rank<r>.jsonl`: the samples each rank consumed, then its final checksum.

    A debugging aid (params `train.trace`): shows that ranks read disjoint partitions and
    ended with identical weights.
    """

    def __init__(self, folder: Path | None, rank: int) -> None:
        self.path = None if folder is None else folder / f"rank{rank}.jsonl"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.unlink(missing_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        """Append one JSON line (no-op when tracing is off)."""
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")

    def batch(self, step: int, micro: int, batch: dict[str, Any]) -> None:
        """Record which samples one micro-batch held."""
        if self.path is not None:
            partitions = torch.as_tensor(batch["partition"]).tolist()
            positions = torch.as_tensor(batch["position"]).tolist()
            self.write(
                {
                    "step": step,
                    "micro": micro,
                    "keys": list(batch["key"]),
                    "samples": [list(p) for p in zip(partitions, positions, strict=True)],
                }
            )

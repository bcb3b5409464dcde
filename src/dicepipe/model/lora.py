"""LoRA few-shot adaptation: peft adapters on the transformer plus one new task row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers.loaders import SD3LoraLoaderMixin
from peft import LoraConfig, get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import save_file

from .diception import DiceptionModel
from .folder import ModelFolderError, safetensors_shapes
from .presets import count_parameters

DEFAULT_TARGETS: tuple[str, ...] = ("to_q", "to_k", "to_v")
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
TASK_WEIGHTS = "task_embedding.safetensors"


def add_lora(
    model: DiceptionModel,
    *,
    rank: int = 128,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
    task: str | None = None,
    task_tokens: torch.Tensor | None = None,
    task_pooled: torch.Tensor | None = None,
    init_from: str | None = None,
) -> int | None:
    """Freeze the model, inject LoRA into ``target_modules`` and optionally add a task row.

    Afterwards only the LoRA weights and the new task row (unless its embeddings are given,
    i.e. a text-encoded prompt) require grad. Returns the new task's id, if any.
    """
    model.requires_grad_(False)
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        init_lora_weights="gaussian",
        target_modules=list(target_modules),
    )
    model.transformer.add_adapter(config)
    if task is None:
        return None
    return model.add_task(task, task_tokens, task_pooled, init_from=init_from)


def trainable_fraction(model: torch.nn.Module) -> float:
    """Trainable parameters / all parameters (adapters included)."""
    return count_parameters(model, trainable_only=True) / count_parameters(model)


def save_lora(model: DiceptionModel, directory: str | Path, task: str | None = None) -> Path:
    """Write the adapter in diffusers' LoRA format and, if given, the task row beside it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    transformer = model.transformer
    layers = get_peft_model_state_dict(transformer)
    SD3LoraLoaderMixin.save_lora_weights(
        str(directory),
        transformer_lora_layers=layers,
        weight_name=LORA_WEIGHTS,
    )
    if task is not None:
        row = model.task_id(task)
        tensors = {
            "tokens": model.task_table.tokens[row].detach().float().cpu().contiguous(),
            "pooled": model.task_table.pooled[row].detach().float().cpu().contiguous(),
        }
        save_file(tensors, str(directory / TASK_WEIGHTS), metadata={"name": task})
    return directory


def load_lora(model: DiceptionModel, directory: str | Path) -> int | None:
    """Load an adapter saved by ``save_lora`` (and its task row, frozen); returns the task id.

    The folder is checked first: ModelFolderError names the missing, truncated or unfitting
    file rather than a loader traceback.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFolderError(f"LoRA adapter folder {directory} does not exist")
    safetensors_shapes(directory / LORA_WEIGHTS)
    task_file = directory / TASK_WEIGHTS
    task = _read_task_row(task_file) if task_file.exists() else None
    if task is not None and task[0] in model.tasks:
        raise ModelFolderError(f"{task_file}: the model already has a task {task[0]!r}")
    try:
        model.transformer.load_lora_adapter(
            str(directory), weight_name=LORA_WEIGHTS, prefix="transformer"
        )
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise ModelFolderError(
            f"{directory / LORA_WEIGHTS}: does not fit this model ({error})"
        ) from None
    if task is None:
        return None
    name, tokens, pooled = task
    try:
        return model.add_task(name, tokens, pooled)
    except ValueError as error:
        raise ModelFolderError(f"{task_file}: does not fit this model ({error})") from None


def _read_task_row(path: Path) -> tuple[str, torch.Tensor, torch.Tensor]:
    safetensors_shapes(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            name = (f.metadata() or {})["name"]
            return name, f.get_tensor("tokens"), f.get_tensor("pooled")
    except (KeyError, OSError, ValueError) as error:
        raise ModelFolderError(f"{path}: not a task row ({error})") from None


def merge_lora(model: DiceptionModel) -> DiceptionModel:
    """Fold the loaded adapter into the transformer's weights and drop the LoRA layers
    (diffusers' ``fuse_lora`` + ``unload_lora``): a plain model with the same predictions."""
    model.transformer.fuse_lora(lora_scale=1.0)
    model.transformer.unload_lora()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model

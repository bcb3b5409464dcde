"""What a training run is made of: the model and its space, the effective loader, precision."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from dicepipe.model import DiceptionModel, FlowConfig, cache_task_prompts, make_space, preset
from dicepipe.params import LoaderParams, TrainFlowParams, TrainParams
from dicepipe.shards.manifest import shards_identity
from dicepipe.storage import digest_of
from dicepipe.tasks import SHARD_TASKS, TASK_NAMES, TASK_PROMPTS

# Knobs that change how a run is driven, not what it computes: a checkpoint made under other
# values of these is still the same run (so `resume: latest` may continue it).
RUN_CONTROL = (
    "steps",
    "resume",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "metrics",
    "output",
    "trace",
    "gradient_checkpointing",
    "threads",
)


def loader_params(params: TrainParams, loader: LoaderParams) -> LoaderParams:
    """The loader section with the train section's batch size, resolution and workers."""
    changes = {
        name: getattr(params, name)
        for name in ("batch_size", "resolution", "num_workers")
        if getattr(params, name) is not None
    }
    return dataclasses.replace(loader, **changes)


def run_digest(params: TrainParams, loader: LoaderParams) -> str:
    """Identity of what a run computes: every param except the run-control knobs, and the
    content of the shards (re-encoded shards start a new run instead of resuming)."""
    train = {k: v for k, v in dataclasses.asdict(params).items() if k not in RUN_CONTROL}
    effective = loader_params(params, loader)
    return digest_of(train, dataclasses.asdict(effective), shards_identity(effective.shards))


def mixed_precision(choice: str, cuda: bool) -> str:
    """accelerate's `mixed_precision`: `auto` is bf16 on CUDA and no autocast on the CPU."""
    if choice == "auto":
        return "bf16" if cuda else "no"
    return choice


def flow_config(flow: TrainFlowParams) -> FlowConfig:
    """The flow-matching loss settings of a `flow` params subsection (train or finetune)."""
    return FlowConfig(**dataclasses.asdict(flow))


def model_config(params: TrainParams) -> dict[str, Any]:
    """A from-scratch preset with the params' size overrides applied."""
    config = preset(params.preset)
    overrides = params.model.given()
    for name in ("task_token_length", "point_frequencies", "condition", "point_map"):
        if name in overrides:
            config[name] = overrides.pop(name)
    config["transformer_config"].update(overrides)
    return config


def build_model(params: TrainParams, cache_dir: Path) -> tuple[DiceptionModel, Any]:
    """The model (seeded from `params.seed`) and its space, on the CPU.

    Without `pretrained`: the preset from scratch in pixel space, with learned task prompts.
    With it: the SD3 folder's transformer, its VAE latents, and its text encoders' prompt
    embeddings (encoded once into `cache_dir`, then a frozen task table).
    """
    torch.manual_seed(params.seed)
    if params.pretrained is None:
        model = DiceptionModel(**model_config(params), tasks=list(SHARD_TASKS))
        space = make_space(model.config)
    else:
        from dicepipe.weights import resolve_weights

        folder = resolve_weights(params.pretrained, param="train.pretrained")
        model = DiceptionModel.from_transformer(folder, tasks=list(SHARD_TASKS))
        model.load_task_embeddings(prompt_cache(folder, cache_dir))
        space = make_space(model.config, vae=folder)
    check_resolution(model, space, params.resolution)
    return model, space


def prompt_cache(folder: Path, cache_dir: Path) -> Path:
    """The task prompts of `folder`'s text encoders, encoded once per folder and prompt set."""
    prompts = {task: TASK_PROMPTS[task] for task in SHARD_TASKS}
    path = cache_dir / f"prompts-{digest_of(str(folder.resolve()), prompts)}.safetensors"
    if not path.exists():
        cache_task_prompts(folder, path, prompts)
    return path


def inference_info(params: TrainParams, loader: LoaderParams) -> dict[str, Any]:
    """What `dicepipe.model.inference` reads beside a saved model: the training resolution and
    the VAE folder of a latent model (None in pixel space)."""
    vae = None
    if params.pretrained is not None:
        from dicepipe.weights import resolve_weights

        vae = str(resolve_weights(params.pretrained, param="train.pretrained"))
    return {"resolution": loader_params(params, loader).resolution, "vae": vae}


def latent_factor(space: Any) -> int:
    """Pixels per model-space cell: 1 in pixel space, the VAE's downsampling in latent space."""
    vae = getattr(space, "vae", None)
    return 1 if vae is None else 2 ** (len(vae.config.block_out_channels) - 1)


def check_resolution(model: DiceptionModel, space: Any, resolution: int | None) -> None:
    """Fail early, with the numbers, when `resolution` does not fit the transformer."""
    if resolution is None:
        return
    config = model.transformer.config
    cell = latent_factor(space) * config.patch_size
    if resolution % cell:
        raise ValueError(f"resolution {resolution} is not a multiple of {cell} (patch x VAE)")
    if resolution // cell > config.pos_embed_max_size:
        raise ValueError(
            f"resolution {resolution} gives {resolution // cell} patches a side; the "
            f"transformer's pos_embed_max_size is {config.pos_embed_max_size}"
        )


def task_lookup(model: DiceptionModel) -> torch.Tensor:
    """Loader task id (index into the task registry) -> the model's task row (-1: none)."""
    names = model.tasks
    return torch.tensor([names.index(n) if n in names else -1 for n in TASK_NAMES])

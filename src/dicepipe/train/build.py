"""What a training run is made of: the model and its space, the effective loader, precision."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from dicepipe.config import ConfigError
from dicepipe.layout import cache_dir
from dicepipe.model import DiceptionModel, FlowConfig, cache_task_prompts, make_space, preset
from dicepipe.model.folder import VAE_DIR, check_resolution
from dicepipe.params.loader import LoaderParams
from dicepipe.params.train import TrainFlowParams, TrainParams
from dicepipe.shards.manifest import MANIFEST_NAME, shards_identity
from dicepipe.storage import digest_of, sha256_file
from dicepipe.tasks import SHARD_TASKS, TASK_NAMES, TASK_PROMPTS

# Knobs that change how a run is driven, not what it computes: a checkpoint made under other
# values of these is still the same run (so `resume: latest` may continue it).
RUN_CONTROL = (
    "steps",
    "resume",
    "checkpoint_url",
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
        return model, make_space(model.config)
    folder = pretrained_folder(params)
    model = DiceptionModel.from_transformer(folder, tasks=list(SHARD_TASKS))
    model.load_task_embeddings(prompt_cache(folder, cache_dir))
    return model, make_space(model.config, vae=folder)


def pretrained_folder(params: TrainParams) -> Path:
    """The local folder of `train.pretrained` (a path, or a hub id found in the cache)."""
    from dicepipe.weights import resolve_weights

    assert params.pretrained is not None
    return resolve_weights(params.pretrained, param="train.pretrained")


def prompt_cache_dir() -> Path:
    """Where encoded task prompts are cached (`$DICEPIPE_CACHE/prompts`)."""
    return cache_dir() / "prompts"


def prompt_cache_path(folder: Path, cache_dir: Path) -> Path:
    """The cache file of every registry task's prompt encoded by `folder`'s text encoders."""
    return cache_dir / f"prompts-{digest_of(str(folder.resolve()), TASK_PROMPTS)}.safetensors"


def prompt_cache(folder: Path, cache_dir: Path) -> Path:
    """Every registry task's prompt (the shard tasks and those only finetuning makes, so a new
    task's row can start from its own prompt) encoded once per folder and prompt set."""
    path = prompt_cache_path(folder, cache_dir)
    if not path.exists():
        cache_task_prompts(folder, path, dict(TASK_PROMPTS))
    return path


def vae_folder(folder: Path) -> Path:
    """The VAE inside an SD3 folder (`vae/`), or the folder itself when it is a VAE."""
    sub = folder / VAE_DIR
    return sub if (sub / "config.json").is_file() else folder


def transformer_config(params: TrainParams) -> dict[str, Any]:
    """The transformer config a run trains: the pretrained folder's, else the preset's."""
    if params.pretrained is None:
        return model_config(params)["transformer_config"]
    folder = pretrained_folder(params)
    sub = folder / "transformer"
    path = (sub if (sub / "config.json").is_file() else folder) / "config.json"
    return json.loads(path.read_text())


def training_resolution(params: TrainParams, loader: LoaderParams) -> int:
    """The one training resolution (train.resolution, else loader.resolution), checked against
    the transformer before any step; ConfigError naming the params otherwise."""
    resolution = loader_params(params, loader).resolution
    where = "train.resolution" if params.resolution is not None else "loader.resolution"
    if resolution is None:
        raise ConfigError(
            "train.resolution and loader.resolution are both null: the model trains and "
            "predicts at one square resolution; set one of them"
        )
    vae = None if params.pretrained is None else vae_folder(pretrained_folder(params))
    check_resolution(resolution, {"transformer_config": transformer_config(params)}, vae, where)
    return resolution


def inference_info(params: TrainParams, loader: LoaderParams) -> dict[str, Any]:
    """What a saved model folder's `inference.json` holds: the training resolution (resolved
    and checked here, once), what it was trained on, how (`flow`), and, as source paths that
    saving copies into the folder, the VAE and the encoded prompts of a latent model (None in
    pixel space)."""
    effective = loader_params(params, loader)
    manifest = Path(effective.shards) / MANIFEST_NAME
    info: dict[str, Any] = {
        "resolution": training_resolution(params, loader),
        "vae": None,
        "trained_on": {
            "shards": effective.shards,
            "manifest_sha256": sha256_file(manifest) if manifest.is_file() else None,
        },
        # how to sample it (dicepipe.model.folder.trained_sampling)
        "flow": {
            "deterministic": params.flow.deterministic,
            "prompt_dropout": params.flow.prompt_dropout,
        },
    }
    if params.pretrained is not None:
        folder = pretrained_folder(params)
        info["vae"] = str(vae_folder(folder))
        info["prompts"] = str(prompt_cache_path(folder, prompt_cache_dir()))
    return info


def task_lookup(model: DiceptionModel) -> torch.Tensor:
    """Loader task id (index into the task registry) -> the model's task row (-1: none)."""
    names = model.tasks
    return torch.tensor([names.index(n) if n in names else -1 for n in TASK_NAMES])

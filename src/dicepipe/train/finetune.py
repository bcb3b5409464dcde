"""Few-shot LoRA: a trained generalist learns a new task from ~50 pairs (DICEPTION Sec. 4.4).

The pairs of the sample's new task, `highlight` (low-light enhancement), are made from shard
images by `targets.lowlight`: distinct images chosen by seeded hash of their keys, the first
`examples` for training, the next `heldout` for scoring. The base is any model folder, pixel
or latent (its VAE comes with it), trained on accelerate with the train stage's precision
(`mixed_precision`: bf16 autocast on CUDA by default) and optional gradient checkpointing.

The new task's row starts from an encoding of its own prompt: the text encoders' embedding
that a latent model trained from SD3 carries in `prompts.safetensors` (kept frozen, as every
row of a text-encoded table is); a model with a learned table has no text encoder, so its row
starts at the mean of its learned task rows (the centre of what it reads as "a task", where
the empty prompt would be the unconditional branch) and trains. The adapter is saved in
diffusers' LoRA format beside the task row, and loading it onto a fresh copy of the base
model is checked to give the same predictions as the model that trained it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from dicepipe.model import (
    MAX_POINTS,
    DiceptionModel,
    add_lora,
    flow_matching_loss,
    load_lora,
    load_prompt_cache,
    predict,
    save_lora,
    trainable_fraction,
)
from dicepipe.model.folder import LoadedModelFolder, load_model_folder
from dicepipe.params.finetune import FinetuneParams
from dicepipe.sampling import item_rng, stable_hash
from dicepipe.shards.manifest import shard_paths
from dicepipe.storage import atomic_path, write_json
from dicepipe.targets.lowlight import lowlight_pair
from dicepipe.tasks import TASK_PROMPTS
from dicepipe.train.build import flow_config, mixed_precision
from dicepipe.train.loader import decode_rgb, to_tensor
from dicepipe.weights import resolve_device


def pick_images(params: FinetuneParams, count: int) -> list[tuple[str, bytes]]:
    """(key, image bytes) of `count` distinct shard images of `params.sources`, the ones with
    the smallest seeded key hash (the same choice however the shards are split)."""
    chosen: dict[str, bytes] = {}
    for path in shard_paths(params.shards):
        table = pq.read_table(path, columns=["key", "source", "image"]).to_pylist()
        for row in table:
            if row["source"] in params.sources and row["key"] not in chosen:
                chosen[row["key"]] = row["image"]["bytes"]
    keys = sorted(chosen, key=lambda k: (stable_hash(params.seed, k), k))[:count]
    if len(keys) < count:
        raise ValueError(
            f"finetune needs {count} images of {list(params.sources)} in {params.shards}, "
            f"found {len(keys)}"
        )
    return [(k, chosen[k]) for k in keys]


def make_pairs(
    images: list[tuple[str, bytes]], params: FinetuneParams, resolution: int
) -> dict[str, torch.Tensor]:
    """The task's (input, target) pairs as loader-format tensors in [-1, 1], decoded and
    resized as the training loader does."""
    inputs, targets = [], []
    for key, data in images:
        rgb = decode_rgb(data, resolution, nearest=False)
        dark, target = lowlight_pair(rgb, item_rng(params.seed, key, params.task))
        inputs.append(to_tensor(dark))
        targets.append(to_tensor(target))
    size = len(images)
    return {
        "image": torch.stack(inputs),
        "target": torch.stack(targets),
        "points": torch.zeros(size, MAX_POINTS, 2),
        "point_mask": torch.zeros(size, MAX_POINTS, dtype=torch.bool),
    }


def make_accelerator(params: FinetuneParams) -> Any:
    """accelerate's Accelerator with the train stage's precision choice (`auto`: bf16 on CUDA,
    none on the CPU); on the CPU when `device` says so or there is no CUDA."""
    from accelerate import Accelerator

    cuda = resolve_device(params.device).type == "cuda"
    return Accelerator(mixed_precision=mixed_precision(params.mixed_precision, cuda), cpu=not cuda)


def new_task_row(loaded: LoadedModelFolder, task: str) -> tuple[Any, Any, str]:
    """(tokens, pooled, how) the new task's row starts from: its prompt's text-encoder
    embedding when the folder carries one (`text_encoder`), else the mean of the learned task
    rows (`mean_of_task_rows`); see the module docstring."""
    table = loaded.model.task_table
    prompts = loaded.checked.prompts
    if prompts is not None:
        embeddings = load_prompt_cache(prompts)
        if task in embeddings:
            tokens, pooled = embeddings[task]
            return tokens, pooled, "text_encoder"
    tokens = torch.stack(list(table.tokens)).mean(0)
    pooled = torch.stack(list(table.pooled)).mean(0)
    return tokens.detach(), pooled.detach(), "mean_of_task_rows"


def prepare_model(loaded: LoadedModelFolder, params: FinetuneParams) -> tuple[int, str]:
    """Freeze the base, inject LoRA, add the task row (see `new_task_row`); (task id, how the
    row started)."""
    model = loaded.model
    tokens, pooled, how = new_task_row(loaded, params.task)
    add_lora(model, rank=params.rank, target_modules=params.target_modules)
    task_id = model.add_task(params.task, tokens, pooled, trainable=how != "text_encoder")
    if params.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    return task_id, how


def finetune(params: FinetuneParams) -> dict[str, Any]:
    """Train the adapter, save it, check it reloads exactly, score it; the summary."""
    if params.threads is not None:
        torch.set_num_threads(params.threads)
    torch.manual_seed(params.seed)
    accelerator = make_accelerator(params)
    device = str(accelerator.device)
    loaded = load_model_folder(params.base, device, params.resolution, "finetune.resolution")
    model, space = loaded.model, loaded.space
    images = pick_images(params, params.examples + params.heldout)
    pairs = make_pairs(images, params, loaded.resolution)
    total = sum(p.numel() for p in model.parameters())
    task_id, how = prepare_model(loaded, params)
    model.to(accelerator.device)
    fraction = trainable_fraction(model)
    losses, seconds = _train(accelerator, model, space, pairs, task_id, params)
    output = Path(params.output)
    lora_dir = save_lora(model, output / "lora", task=params.task)
    with accelerator.autocast():
        scores = _score(model, space, pairs, task_id, params)
        reload_diff = _reload_difference(model, space, pairs, lora_dir, params)
    summary = {
        "task": params.task,
        "prompt": TASK_PROMPTS.get(params.task),
        "task_init": how,
        "space": model.config.space,
        "resolution": loaded.resolution,
        "mixed_precision": str(accelerator.mixed_precision),
        "gradient_checkpointing": params.gradient_checkpointing,
        "examples": params.examples,
        "heldout": params.heldout,
        "rank": params.rank,
        "target_modules": list(params.target_modules),
        "base_parameters": total,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "trainable_fraction": fraction,
        "steps": params.steps,
        "loss_first": losses[0],
        "loss_last": float(np.mean(losses[-10:])),
        "seconds_per_step": seconds / params.steps,
        "reload_max_abs_diff": reload_diff,
        **scores,
    }
    _plot(losses, output / "loss.png")
    write_json(params.metrics, summary)
    accelerator.end_training()
    return summary


def _batches(pairs: dict[str, torch.Tensor], params: FinetuneParams) -> Any:
    """An endless seeded stream of training batches from the first `examples` pairs."""
    generator = torch.Generator().manual_seed(params.seed)
    while True:
        order = torch.randperm(params.examples, generator=generator)
        for start in range(0, params.examples, params.batch_size):
            index = order[start : start + params.batch_size]
            yield {name: value[index] for name, value in pairs.items()}


def _train(
    accelerator: Any,
    model: DiceptionModel,
    space: Any,
    pairs: dict[str, torch.Tensor],
    task_id: int,
    params: FinetuneParams,
) -> tuple[list[float], float]:
    from tqdm import tqdm

    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.lr)
    prepared, optimizer = accelerator.prepare(model, optimizer)
    config = flow_config(params.flow)
    generator = torch.Generator(accelerator.device).manual_seed(params.seed)
    batches = _batches(pairs, params)
    losses = []
    start = time.perf_counter()
    with tqdm(range(params.steps), desc="finetune", unit="step") as bar:
        for _ in bar:
            batch = {k: v.to(accelerator.device) for k, v in next(batches).items()}
            batch["task_id"] = torch.full((len(batch["image"]),), task_id, dtype=torch.long)
            with accelerator.autocast():  # the precision of the train stage
                loss, _ = flow_matching_loss(
                    prepared, space, batch, generator=generator, config=config
                )
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    return losses, time.perf_counter() - start


def _sample(
    model: DiceptionModel, space: Any, images: torch.Tensor, task_id: int, params: FinetuneParams
) -> torch.Tensor:
    size = len(images)
    return predict(
        model,
        space,
        images,
        torch.full((size,), task_id, dtype=torch.long),
        torch.zeros(size, MAX_POINTS, 2),
        torch.zeros(size, MAX_POINTS, dtype=torch.bool),
        steps=8,
        guidance=1.0,
        one_step=params.flow.deterministic,
        generator=torch.Generator(model.device).manual_seed(params.seed),
    ).cpu()


def _psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean PSNR (dB) of images in [-1, 1] measured on the 0-255 scale."""
    mse = (((prediction - target) * 127.5) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(255.0**2 / mse)).mean())


def _score(
    model: DiceptionModel,
    space: Any,
    pairs: dict[str, torch.Tensor],
    task_id: int,
    params: FinetuneParams,
) -> dict[str, float]:
    """PSNR of the adapted model on the held-out pairs beside the identity baseline (the
    dark input returned as is)."""
    if params.heldout == 0:
        return {}
    images = pairs["image"][params.examples :]
    targets = pairs["target"][params.examples :]
    prediction = _sample(model, space, images, task_id, params)
    return {"heldout_psnr": _psnr(prediction, targets), "identity_psnr": _psnr(images, targets)}


def _reload_difference(
    model: DiceptionModel,
    space: Any,
    pairs: dict[str, torch.Tensor],
    lora_dir: Path,
    params: FinetuneParams,
) -> float:
    """Largest difference between the trained model's predictions and those of a fresh base
    model with the saved adapter loaded (0.0: the adapter round-trips exactly)."""
    images = pairs["image"][:2]
    task_id = model.task_id(params.task)
    trained = _sample(model, space, images, task_id, params)
    fresh = load_model_folder(params.base, str(model.device)).model
    loaded = load_lora(fresh, lora_dir)
    fresh.to(model.device).eval()
    reloaded = _sample(fresh, space, images, loaded, params)
    return float((trained - reloaded).abs().max())


def _plot(losses: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    axis.plot(range(1, len(losses) + 1), losses, lw=1)
    axis.set(xlabel="step", ylabel="loss", yscale="log", title="few-shot LoRA")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)

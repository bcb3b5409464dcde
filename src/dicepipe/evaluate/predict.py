"""Batched sampling of evaluation queries: inputs resized as in training, tasks and points
mixed in one batch, bf16 autocast on CUDA, optional test-time ensembling (Marigold)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from dicepipe.evaluate.scoring import Query
from dicepipe.params.evaluate import EvalSamplingParams

# diffusers' from_pretrained builds models under accelerate's `init_empty_weights`, which
# patches torch.nn.Module process-wide: two threads loading at once can leave it patched (every
# later model then has meta tensors). Loads are serialised; sampling still runs side by side.
_LOADING = threading.Lock()


def load_model(folder: str | Path, device: str, resolution: int | None) -> Any:
    """A checked, loaded model folder (`dicepipe.model.folder.load_model_folder`); resolution:
    the given one, else the training resolution its `inference.json` holds."""
    from dicepipe.model.folder import load_model_folder

    with _LOADING:
        return load_model_folder(folder, device, resolution, "evaluate.resolution")


def _batches(items: Sequence[Query], size: int) -> Iterator[list[Query]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def predict_queries(
    loaded: Any,
    images: Sequence[np.ndarray],
    queries: Sequence[Query],
    sampling: EvalSamplingParams,
    batch_size: int,
    progress: Any = None,
) -> list[np.ndarray]:
    """The RGB prediction (H, W, 3) uint8, at its image's size, of every query (in order).

    `images[q.index]` is the input of query q. Batches hold `batch_size` queries; with
    `sampling.ensemble` = E each is sampled E times (E x batch rows, each its own noise) and
    the E predictions are combined per pixel by the median or mean. The noise of batch b
    comes from seed `sampling.seed + b`: results depend on the seed and the batch size only.
    """
    import torch

    from dicepipe.model.inference import to_input, to_rgb
    from dicepipe.model.points import MAX_POINTS
    from dicepipe.model.sampler import predict

    model, resolution = loaded.model, loaded.resolution
    inputs: dict[int, torch.Tensor] = {}
    outputs: list[np.ndarray] = []
    ensemble = sampling.ensemble
    on_cuda = model.device.type == "cuda"
    for number, batch in enumerate(_batches(queries, batch_size)):
        for query in batch:
            if query.index not in inputs:
                inputs[query.index] = to_input(images[query.index], resolution)[0]
        rgb = torch.stack([inputs[q.index] for q in batch])
        task_ids = torch.tensor([model.task_id(q.task) for q in batch])
        points = torch.zeros(len(batch), MAX_POINTS, 2)
        mask = torch.zeros(len(batch), MAX_POINTS, dtype=torch.bool)
        for row, query in enumerate(batch):
            if query.points is not None and len(query.points):
                points[row, : len(query.points)] = torch.from_numpy(query.points)
                mask[row, : len(query.points)] = True
        generator = torch.Generator(model.device).manual_seed(sampling.seed + number)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda else nullcontext()
        with autocast:
            sampled = predict(
                model,
                loaded.space,
                rgb.repeat(ensemble, 1, 1, 1),
                task_ids.repeat(ensemble),
                points.repeat(ensemble, 1, 1),
                mask.repeat(ensemble, 1),
                steps=sampling.steps,
                guidance=sampling.guidance,
                shift=sampling.shift,
                one_step=sampling.one_step,
                generator=generator,
            )
        stacked = sampled.float().cpu().view(ensemble, len(batch), *sampled.shape[1:])
        combined = _combine(stacked, sampling.reduce)
        for row, query in enumerate(batch):
            height, width = images[query.index].shape[:2]
            outputs.append(to_rgb(combined[row], width, height))
        if progress is not None:
            progress.update(len(batch))
    return outputs


def _combine(samples: Any, reduce: str) -> Any:
    """Per-pixel median (or mean) over the ensemble axis 0."""
    if samples.shape[0] == 1:
        return samples[0]
    return samples.median(dim=0).values if reduce == "median" else samples.mean(dim=0)

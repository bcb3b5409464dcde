"""Preview grids during training: a few fixed shard examples per task, drawn every N steps
into DVCLive's image plots (rows input | target | prediction, one block per task)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dicepipe.params.train import TrainFlowParams

MAX_DRAWS = 2000  # loader samples read while looking for every task's examples
TILE = 96


@dataclass
class PreviewSet:
    """Held examples (a batch of loader samples) and their tasks' model rows."""

    batch: dict[str, Any]

    @classmethod
    def draw(cls, loader_params: Any, rows: int, seed: int) -> PreviewSet:
        """The first `rows` examples of every task in a seeded pass over the shards (no flips)."""
        from dicepipe.shards.manifest import shard_paths
        from dicepipe.train.loader import TaskMixingDataset

        params = dataclasses.replace(loader_params, num_workers=0)
        dataset = TaskMixingDataset(
            shard_paths(params.shards),
            vars(params.weights),
            seed=seed + 1,
            resolution=params.resolution,
            steps=MAX_DRAWS,
        )
        chosen: dict[str, list[dict[str, Any]]] = {}
        for sample in dataset:
            kept = chosen.setdefault(sample["task"], [])
            if len(kept) < rows:
                kept.append(sample)
            if len(chosen) == len(dataset.weights) and all(len(k) >= rows for k in chosen.values()):
                break
        samples = [s for task in sorted(chosen) for s in chosen[task]]
        return cls(torch.utils.data.default_collate(samples))

    def predictions(self, model: Any, space: Any, flow: TrainFlowParams) -> torch.Tensor:
        """The model's outputs (B, 3, H, W) in [-1, 1] for the held examples."""
        from dicepipe.model.sampler import predict
        from dicepipe.train.build import task_lookup

        rows = task_lookup(model)[self.batch["task_id"]]
        was_training = model.training
        model.eval()
        try:
            return predict(
                model,
                space,
                self.batch["image"],
                rows,
                self.batch["points"],
                self.batch["point_mask"],
                steps=8,
                guidance=1.0,
                shift=flow.shift,
                one_step=flow.deterministic,
                generator=torch.Generator(model.device).manual_seed(0),
            ).cpu()
        finally:
            model.train(was_training)

    def grid(self, predictions: torch.Tensor) -> np.ndarray:
        """The picture: one row per example, input (with its points) | target | prediction."""
        from dicepipe.shards.preview import draw_points, grid

        rows = []
        for i in range(predictions.shape[0]):
            image = to_uint8(self.batch["image"][i])
            points = self.batch["points"][i][self.batch["point_mask"][i]].tolist()
            shown = draw_points(image, points) if points else image
            rows.append([shown, to_uint8(self.batch["target"][i]), to_uint8(predictions[i])])
        return grid(rows, tile=TILE, titles=("input", "target", "prediction"))

    def log(self, model: Any, space: Any, live_dir: Path, step: int, flow: TrainFlowParams) -> Path:
        """Write the grid of `step` as DVCLive's image `preview/step-<step>.png`; its path."""
        from dvclive.plots import Image

        picture = self.grid(self.predictions(model, space, flow))
        image = Image(f"preview/step-{step:06d}.png", str(live_dir / "plots"))
        image.dump(picture)
        return Path(image.output_path)


def to_uint8(chw: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    rgb = ((chw.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0)
    return np.ascontiguousarray(rgb.numpy())

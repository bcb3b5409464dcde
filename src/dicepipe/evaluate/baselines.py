"""Trivial baselines scored beside the model on the same images and by the same code.

- depth: the mean training depth map (rendered training-split scenes, or the depth targets of
  the shards decoded with their meta), resized to each image and aligned like a prediction;
- normals: the mean training normal, the same at every pixel;
- point segmentation: a disc of `disc_radius` (fraction of the shorter side) around every
  prompt point;
- entity segmentation: one mask covering the whole image (`whole`) or no mask (`none`);
- pose: no person.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dicepipe.evaluate.heldout import split_ids
from dicepipe.params.evaluate import BaselineParams, HeldoutParams
from dicepipe.targets.depth import decode_depth
from dicepipe.targets.normals import decode_normals

EMPTY_PEOPLE = np.zeros((0, 17, 3), np.float64)


@dataclass(frozen=True)
class Baselines:
    """The baseline outputs, ready to be shaped to any image."""

    depth: np.ndarray  # (h, w) mean metric depth
    normal: np.ndarray  # (3,) unit vector
    disc_radius: float
    entity: str
    source: str

    def depth_map(self, shape: tuple[int, int]) -> np.ndarray:
        """The mean depth map resized to (H, W)."""
        import cv2

        height, width = shape
        return cv2.resize(self.depth, (width, height), interpolation=cv2.INTER_LINEAR)

    def normal_map(self, shape: tuple[int, int]) -> np.ndarray:
        """The mean normal at every pixel of an (H, W) image."""
        return np.broadcast_to(self.normal.astype(np.float32), (*shape, 3)).copy()

    def point_mask(self, points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """The union of discs around normalised (x, y) points on an (H, W) image."""
        height, width = shape
        radius = self.disc_radius * min(height, width)
        ys, xs = np.mgrid[0:height, 0:width]
        mask = np.zeros(shape, bool)
        for x, y in np.asarray(points, np.float64).reshape(-1, 2):
            mask |= (xs + 0.5 - x * width) ** 2 + (ys + 0.5 - y * height) ** 2 <= radius**2
        return mask

    def entity_masks(self, shape: tuple[int, int]) -> tuple[list[np.ndarray], list[float]]:
        """One whole-image mask with score 1, or nothing."""
        if self.entity == "whole":
            return [np.ones(shape, bool)], [1.0]
        return [], []

    def describe(self) -> dict[str, str]:
        """What each task's baseline is, for the report."""
        return {
            "depth": f"mean training depth map ({self.source}), aligned like the model",
            "normal": f"mean training normal ({self.source}) at every pixel",
            "point_segmentation": f"discs of radius {self.disc_radius:g} x shorter side",
            "entity_segmentation": f"{self.entity}: one whole-image mask or none",
            "pose": "no person",
        }


def build_baselines(params: BaselineParams, heldout: HeldoutParams) -> Baselines:
    """The baselines of the params, at the held-out scenes' size."""
    size = (heldout.height, heldout.width)
    if params.source == "synthetic":
        depth, normal = _synthetic_means(heldout.seed, params.scenes, size)
        source = f"{params.scenes} training-split scenes"
    else:
        depth, normal = _shard_means(Path(params.shards), params.max_rows, size)
        source = f"shards {params.shards}"
    return Baselines(depth, normal, params.disc_radius, params.entity, source)


def _synthetic_means(seed: int, n: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from dicepipe.sources.synthetic.scenes import render_from_id

    height, width = size
    depth_sum = np.zeros(size, np.float64)
    normal_sum = np.zeros(3, np.float64)
    for source_id in split_ids(seed, n, "train"):
        scene = render_from_id(source_id, width, height)
        depth_sum += scene.depth
        normal_sum += scene.normals.reshape(-1, 3).sum(axis=0)
    return (depth_sum / n).astype(np.float32), _unit(normal_sum)


def _shard_means(
    shards: Path, max_rows: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    from dicepipe.imageio import decode_image

    height, width = size
    depths, normal_sum = [], np.zeros(3, np.float64)
    for task, target, meta in _shard_targets(shards, ("depth", "normal"), max_rows):
        rgb = decode_image(target).rgb
        if task == "depth":
            depth = decode_depth(rgb, json.loads(meta))
            depths.append(cv2.resize(depth, (width, height), interpolation=cv2.INTER_AREA))
        else:
            normal_sum += np.nansum(decode_normals(rgb).reshape(-1, 3), axis=0)
    if not depths or not normal_sum.any():
        raise ValueError(f"baseline.source shards: {shards} holds no depth and normal targets")
    return np.mean(depths, axis=0).astype(np.float32), _unit(normal_sum)


def _shard_targets(shards: Path, tasks: tuple[str, ...], max_rows: int) -> list[tuple]:
    """(task, target bytes, meta) of the first `max_rows` rows of each task, in file order."""
    import pyarrow.parquet as pq

    counts = dict.fromkeys(tasks, 0)
    rows = []
    for path in sorted(shards.glob("*.parquet")):
        if all(count >= max_rows for count in counts.values()):
            break
        table = pq.read_table(
            path, columns=["task", "target", "meta"], filters=[("task", "in", list(tasks))]
        )
        for row in table.to_pylist():
            if counts[row["task"]] < max_rows:
                counts[row["task"]] += 1
                rows.append((row["task"], row["target"]["bytes"], row["meta"]))
    return rows


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else np.array([0.0, 0.0, 1.0])).astype(np.float32)

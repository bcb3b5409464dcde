"""Shard writing vs raw PNG encoding of the same targets, and loader samples/s, in one run.

Targets of every task (depth, normal, point/entity/semantic segmentation, pose) are rendered
once by the dicepipe.targets encoders from synthetic raw labels. Then, timed side by side:
PNG-encoding them alone, and PNG-encoding them plus `write_shard` (rows, Parquet, sha256).
The ratio is raw rows/s over shard rows/s in time terms (goal: >= 0.8). The loader is timed
on the shard it wrote, single process, decoding and resizing to `--size`.

    .venv/bin/python bench/encode.py [--size 256] [-n 40] [--repeats 5]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dicepipe.imageio import encode_jpeg, encode_png
from dicepipe.shards.writer import image_cell, write_shard
from dicepipe.targets import (
    encode_depth,
    encode_instances,
    encode_normals,
    encode_point_mask,
    encode_pose,
)
from dicepipe.tasks import TASK_PROMPTS


def _smooth(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    noise = rng.standard_normal((size, size)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), sigma)


def _masks(rng: np.random.Generator, size: int, count: int) -> list[np.ndarray]:
    masks = []
    for _ in range(count):
        mask = np.zeros((size, size), np.uint8)
        centre = tuple(int(v) for v in rng.integers(size // 8, size - size // 8, 2))
        axes = tuple(int(v) for v in rng.integers(size // 16, size // 4, 2))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        masks.append(mask.astype(bool))
    return masks


def render_targets(i: int, size: int) -> dict[str, np.ndarray]:
    """One uint8 RGB target per task for synthetic item `i`, via the dicepipe encoders."""
    rng = np.random.default_rng(i)
    depth = 2.0 + np.linspace(0, 3, size)[:, None] + _smooth(rng, size, size / 16) * 8
    gy, gx = np.gradient(depth)
    normals = np.dstack([-gx * 20, gy * 20, np.ones_like(depth)])
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    masks = _masks(rng, size, 8)
    keypoints = np.concatenate(
        [rng.uniform(size * 0.1, size * 0.9, (2, 17, 2)), np.full((2, 17, 1), 2.0)], axis=2
    )
    return {
        "depth": encode_depth(depth)[0],
        "normal": encode_normals(normals),
        "point_segmentation": encode_point_mask(masks[0], rng)[0],
        "entity_segmentation": encode_instances(masks, rng)[0],
        "semantic_segmentation": encode_instances(masks, rng, categories=list(range(8)))[0],
        "pose": encode_pose(keypoints, size, size),
    }


def photo_jpeg(i: int, size: int) -> bytes:
    """A smooth grey synthetic photo as JPEG (shards keep input images as they come)."""
    grey = np.clip(128 + _smooth(np.random.default_rng(i), size, 4) * 300, 0, 255)
    return encode_jpeg(grey.astype(np.uint8)[..., None].repeat(3, 2))


def _row(i: int, task: str, image: bytes, target: bytes, size: int) -> dict:
    return {
        "key": f"bench/{i:06d}",
        "task": task,
        "prompt": TASK_PROMPTS[task],
        "image": image_cell(image),
        "target": image_cell(target),
        "points": [[0.5, 0.5]] if task == "point_segmentation" else [],
        "source": "bench",
        "source_id": str(i),
        "width": size,
        "height": size,
        "teacher": "bench",
        "meta": "{}",
    }


def _best_of(fns, repeats: int) -> list[float]:
    """Best time of each function, run interleaved so both see the same machine load."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [min(t) for t in times]


def main() -> None:
    """Print rows/s and MB/s of raw PNG encoding and of shard writing, their ratio, loader/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="target side in pixels")
    parser.add_argument("-n", type=int, default=40, help="synthetic items (6 targets each)")
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    items = [render_targets(i, args.size) for i in range(args.n)]
    t_render = time.perf_counter() - t0
    images = [photo_jpeg(i, args.size) for i in range(args.n)]
    targets = [(i, task, rgb) for i, item in enumerate(items) for task, rgb in item.items()]
    rows = len(targets)
    png_bytes = sum(len(encode_png(rgb)) for _, _, rgb in targets)

    def raw() -> None:
        for _, _, rgb in targets:
            encode_png(rgb)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.parquet"

        def shard() -> None:
            cells = [
                _row(i, task, images[i], encode_png(rgb), args.size) for i, task, rgb in targets
            ]
            write_shard(path, cells)

        t_raw, t_shard = _best_of([raw, shard], args.repeats)
        shard_mb = path.stat().st_size / 1e6
        loader_rate = _loader_rate(path, args.size, rows)
    print(
        f"{rows} targets of {args.size}x{args.size} ({args.n} items x 6 tasks), best of "
        f"{args.repeats}, 1 OpenCV thread; rendering them took {t_render:.2f} s"
    )
    print(f"raw PNG encode      : {rows / t_raw:8.1f} rows/s {png_bytes / 1e6 / t_raw:7.1f} MB/s")
    print(
        f"PNG + write_shard   : {rows / t_shard:8.1f} rows/s {shard_mb / t_shard:7.1f} MB/s"
        f" (shard {shard_mb:.1f} MB incl. images)"
    )
    print(f"ratio shard rows/s / raw PNG rows/s: {t_raw / t_shard:.2f} (goal >= 0.8)")
    print(
        f"loader (1 process, decode + resize to {args.size}, tensors): {loader_rate:.1f} samples/s"
    )


def _loader_rate(path: Path, size: int, rows: int) -> float:
    from dicepipe.train.loader import TaskMixingDataset

    weights = dict.fromkeys(TASK_PROMPTS, 1.0)
    dataset = TaskMixingDataset([path], weights, resolution=size)
    stream = iter(dataset)
    next(stream)  # warm-up: reads the row group
    t0 = time.perf_counter()
    count = sum(1 for _ in itertools.islice(stream, rows))
    return count / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()

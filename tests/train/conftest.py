"""Tiny shards and a model far smaller than the `tiny` preset, for training-loop tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from dicepipe.imageio import encode_png
from dicepipe.params.loader import LoaderParams
from dicepipe.params.train import ModelOverrides, TrainParams
from dicepipe.shards.writer import image_cell, write_shard
from dicepipe.tasks import SHARD_TASKS, TASK_PROMPTS

# 16x16 pixels in 8x8 patches of 2, one block of width 16: a step takes milliseconds.
TEST_MODEL = ModelOverrides(
    num_layers=1,
    num_attention_heads=2,
    attention_head_dim=8,
    patch_size=2,
    joint_attention_dim=16,
    caption_projection_dim=16,
    pooled_projection_dim=16,
    pos_embed_max_size=16,
    task_token_length=2,
    point_frequencies=4,
)
SIDE = 16


def _row(task: str, index: int, rng: np.random.Generator) -> dict:
    image = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    return {
        "key": f"test/{task}/{index:03d}",
        "task": task,
        "prompt": TASK_PROMPTS[task],
        "image": image_cell(encode_png(image)),
        "target": image_cell(encode_png(255 - image)),
        "points": [[0.25, 0.5], [0.5, 0.5]] if task == "point_segmentation" else [],
        "source": "synthetic",
        "source_id": str(index),
        "width": SIDE,
        "height": SIDE,
        "teacher": "test",
        "meta": "{}",
    }


def write_test_shards(folder: Path, per_task: int = 6, files: int = 2) -> Path:
    """`per_task` rows of every shard task over `files` shards of 4-row row groups."""
    rng = np.random.default_rng(0)
    rows = [_row(task, i, rng) for task in SHARD_TASKS for i in range(per_task)]
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        write_shard(folder / f"test-{f:03d}.parquet", rows[f::files], row_group_bytes=4 * 1500)
    return folder


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> Path:
    """One set of tiny shards for the whole session (they are only read)."""
    return write_test_shards(tmp_path_factory.mktemp("shards"))


Factory = Callable[..., tuple[TrainParams, LoaderParams]]


@pytest.fixture
def make_params(tmp_path: Path, shards: Path) -> Factory:
    """`make_params(name, **train_changes)`: params of a tiny run writing to tmp_path/name."""

    def make(name: str = "run", **changes: object) -> tuple[TrainParams, LoaderParams]:
        base = TrainParams(
            model=TEST_MODEL,
            resolution=SIDE,
            batch_size=4,
            num_workers=0,
            steps=4,
            lr=1e-3,
            checkpoint_every=2,
            keep_checkpoints=2,
            output=str(tmp_path / name),
            metrics=str(tmp_path / name / "metrics.json"),
        )
        loader = LoaderParams(shards=str(shards), num_workers=0, batch_size=4, resolution=SIDE)
        return dataclasses.replace(base, **changes), loader

    return make


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """accelerate keeps one state per process; each run here starts from a clean one. Tiny
    models run fastest on one thread."""
    from accelerate.state import AcceleratorState, GradientState

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    torch.set_num_threads(threads)

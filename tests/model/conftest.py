"""Tiny random-weight DICEPTION models and batches for the model tests (no downloads)."""

from __future__ import annotations

import pytest
import torch

from dicepipe.model import DiceptionModel

# Smaller than the `tiny` preset: 16x16 RGB -> 8x8 patches of 2, two blocks of width 32.
TEST_TRANSFORMER = {
    "sample_size": 8,
    "patch_size": 2,
    "in_channels": 3,
    "out_channels": 3,
    "num_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 32,
    "caption_projection_dim": 32,
    "pooled_projection_dim": 16,
    "pos_embed_max_size": 16,
}
TASKS = ["depth", "normal", "point_segmentation"]
SIZE = 16


def make_model(seed: int = 0, **kwargs: object) -> DiceptionModel:
    """A seeded test-sized model."""
    torch.manual_seed(seed)
    kwargs.setdefault("transformer_config", dict(TEST_TRANSFORMER))
    kwargs.setdefault("tasks", TASKS)
    kwargs.setdefault("task_token_length", 4)
    kwargs.setdefault("point_frequencies", 8)
    return DiceptionModel(**kwargs).eval()


def make_batch(size: int = 4, seed: int = 0, side: int = SIZE) -> dict[str, torch.Tensor]:
    """A seeded batch in the training loop's format, with 0..4 real points per sample."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.arange(size) % 5
    return {
        "image": torch.rand(size, 3, side, side, generator=g) * 2 - 1,
        "target": torch.rand(size, 3, side, side, generator=g) * 2 - 1,
        "points": torch.rand(size, 5, 2, generator=g),
        "point_mask": torch.arange(5)[None] < counts[:, None],
        "task_id": torch.arange(size) % len(TASKS),
    }


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; two spin-wait badly when the CPUs are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model() -> DiceptionModel:
    """A fresh seeded test model."""
    return make_model()


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    """A fixed batch of 4."""
    return make_batch()

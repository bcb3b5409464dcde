"""Preview grids during training: one row per held example, written as DVCLive images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dicepipe.shards.preview import HEADER_PX
from dicepipe.tasks import SHARD_TASKS
from dicepipe.train.build import loader_params
from dicepipe.train.loop import train
from dicepipe.train.previews import TILE, PreviewSet


def test_a_run_writes_a_preview_grid_every_n_steps(make_params):
    params, loader = make_params(steps=4, preview_every=2, preview_rows=1)
    train(params, loader)
    folder = Path(params.output) / "live" / "plots" / "images" / "preview"
    assert sorted(p.name for p in folder.iterdir()) == ["step-000002.png", "step-000004.png"]
    picture = np.asarray(Image.open(folder / "step-000004.png"))
    rows = len(SHARD_TASKS)  # one example of every task
    assert picture.shape == (HEADER_PX + rows * TILE + (rows - 1) * 4, 3 * TILE + 2 * 4, 3)


def test_the_preview_examples_are_fixed_and_cover_every_task(make_params):
    params, loader = make_params()
    first = PreviewSet.draw(loader_params(params, loader), 2, seed=0)
    second = PreviewSet.draw(loader_params(params, loader), 2, seed=0)
    assert first.batch["key"] == second.batch["key"]
    assert sorted(set(first.batch["task"])) == sorted(SHARD_TASKS)
    assert len(first.batch["key"]) == 2 * len(SHARD_TASKS)

"""How the input image and the prompt points reach the transformer (condition, point_map)."""

from __future__ import annotations

import pytest
import torch

from dicepipe.model import DiceptionModel
from dicepipe.model.diception import point_blobs

from .conftest import make_batch, make_model


def _run(model: DiceptionModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(
            torch.zeros_like(batch["target"]),
            batch["image"],
            torch.full((batch["image"].shape[0],), 1000.0),
            batch["task_id"],
            batch["points"],
            batch["point_mask"],
        )


@pytest.mark.parametrize("condition", ["sequence", "channels"])
def test_both_condition_modes_predict_from_the_image(condition):
    model = make_model(condition=condition)
    batch = make_batch()
    out = _run(model, batch)
    assert out.shape == batch["target"].shape
    other = _run(model, {**batch, "image": batch["image"].flip(-1)})
    assert not torch.allclose(out, other)


def test_an_unknown_condition_mode_is_an_error():
    with pytest.raises(ValueError, match="condition must be one of"):
        make_model(condition="stacked")


def test_the_point_map_moves_outputs_with_the_points_and_round_trips(tmp_path):
    model = make_model(condition="channels", point_map=True)
    batch = make_batch()
    moved = {**batch, "points": 1.0 - batch["points"]}
    changed = (_run(model, batch) - _run(model, moved)).abs().amax(dim=(1, 2, 3))
    assert torch.equal(changed > 0, batch["point_mask"].any(dim=1))  # only samples with points
    model.save_pretrained(tmp_path)
    loaded = DiceptionModel.from_pretrained(tmp_path).eval()
    assert loaded.config.point_map and loaded.config.condition == "channels"
    assert torch.equal(_run(loaded, batch), _run(model, batch))


def test_point_blobs_peak_at_the_shown_points_only():
    points = torch.tensor([[[0.3125, 0.8125], [0.9, 0.1]]])  # the first on a pixel centre
    blobs = point_blobs(points, torch.tensor([[True, False]]), 8, 8)
    assert blobs.shape == (1, 1, 8, 8)
    assert blobs[0, 0, 6, 2] == blobs.max() == 1.0  # row 6, column 2
    assert blobs[0, 0, 0, 7] < 1e-6  # the hidden point draws nothing

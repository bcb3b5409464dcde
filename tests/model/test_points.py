"""Point tokens, padding with "no point", prompt and point dropout."""

from __future__ import annotations

import torch

from dicepipe.model import DiceptionModel, PointEncoder


def test_two_points_padded_with_no_point() -> None:
    encoder = PointEncoder(12, num_frequencies=4, seed=0)
    points = torch.tensor([[[0.1, 0.2], [0.9, 0.5], [0.0, 0.0], [0.3, 0.3], [1.0, 1.0]]])
    mask = torch.tensor([[True, True, False, False, False]])
    tokens = encoder(points, mask)
    assert tokens.shape == (1, 5, 12)
    expected = encoder.mlp(encoder.fourier(points[:, :2])) + encoder.point_embed
    torch.testing.assert_close(tokens[:, :2], expected)
    for i in range(2, 5):
        torch.testing.assert_close(tokens[0, i], encoder.no_point_embed)
    assert not torch.allclose(tokens[0, 0], encoder.no_point_embed)


def test_fourier_matrix_is_seeded_buffer() -> None:
    a, b = PointEncoder(8, seed=3), PointEncoder(8, seed=3)
    assert "gaussian" in dict(a.named_buffers())
    torch.testing.assert_close(a.gaussian, b.gaussian)
    assert not torch.equal(a.gaussian, PointEncoder(8, seed=4).gaussian)


def test_drop_points_gives_five_no_point_tokens(model: DiceptionModel, batch: dict) -> None:
    mask = torch.ones_like(batch["point_mask"])
    drop = torch.tensor([True, False, True, False])
    context, _ = model.context_tokens(batch["task_id"], batch["points"], mask, drop_points=drop)
    length = model.config.task_token_length
    point_tokens = context[:, length:]
    assert point_tokens.shape[1] == 5
    no_point = model.points.no_point_embed.expand(5, -1)
    torch.testing.assert_close(point_tokens[0], no_point)
    torch.testing.assert_close(point_tokens[2], no_point)
    assert not torch.allclose(point_tokens[1, 0], no_point[0])


def test_prompt_dropout_selects_empty_row(model: DiceptionModel, batch: dict) -> None:
    drop = torch.tensor([True, False, False, True])
    context, pooled = model.context_tokens(
        batch["task_id"], batch["points"], batch["point_mask"], drop_prompt=drop
    )
    table = model.task_table
    length = model.config.task_token_length
    for i in range(4):
        row = table.empty_id if drop[i] else int(batch["task_id"][i])
        torch.testing.assert_close(context[i, :length], table.all_tokens()[row])
        torch.testing.assert_close(pooled[i], table.all_pooled()[row])
    assert model.empty_task_id == len(model.tasks) == 3


def test_add_task_appends_trainable_row_and_keeps_ids(model: DiceptionModel) -> None:
    before = model.task_table.all_tokens()[:3].clone()
    new = model.add_task("lung", init_from="point_segmentation")
    assert new == 3 and model.empty_task_id == 4
    assert model.config.tasks == ["depth", "normal", "point_segmentation", "lung"]
    torch.testing.assert_close(model.task_table.all_tokens()[:3], before)
    torch.testing.assert_close(model.task_table.tokens[3], model.task_table.tokens[2])
    assert model.task_table.tokens[3].requires_grad

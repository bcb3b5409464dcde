"""Sampling: shape and range, determinism, guidance, save/load round trip."""

from __future__ import annotations

from pathlib import Path

import torch

from dicepipe.model import DiceptionModel, PixelSpace, make_space, predict


def _predict(model: DiceptionModel, batch: dict, **kwargs: object) -> torch.Tensor:
    kwargs.setdefault("steps", 3)
    return predict(
        model,
        PixelSpace(),
        batch["image"],
        batch["task_id"],
        batch["points"],
        batch["point_mask"],
        **kwargs,  # type: ignore[arg-type]
    )


def test_shape_range_and_seeded(model: DiceptionModel, batch: dict) -> None:
    out = _predict(model, batch, generator=torch.Generator().manual_seed(0))
    assert out.shape == batch["image"].shape
    assert out.min() >= -1 and out.max() <= 1
    again = _predict(model, batch, generator=torch.Generator().manual_seed(0))
    other = _predict(model, batch, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert not torch.equal(out, other)


def test_one_step_is_deterministic(model: DiceptionModel, batch: dict) -> None:
    first = _predict(model, batch, one_step=True)
    second = _predict(model, batch, one_step=True)
    assert torch.equal(first, second)
    assert first.shape == batch["image"].shape


def test_guidance_changes_output(model: DiceptionModel, batch: dict) -> None:
    plain = _predict(model, batch, one_step=True, guidance=1.0)
    guided = _predict(model, batch, one_step=True, guidance=2.0)
    assert not torch.allclose(plain, guided)


def test_batched_equals_single(model: DiceptionModel, batch: dict) -> None:
    full = _predict(model, batch, one_step=True)
    single = _predict(model, {k: v[1:2] for k, v in batch.items()}, one_step=True)
    torch.testing.assert_close(full[1:2], single, atol=1e-5, rtol=1e-5)


def test_save_and_load_pretrained(model: DiceptionModel, batch: dict, tmp_path: Path) -> None:
    model.add_task("lung")
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").exists()
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = DiceptionModel.from_pretrained(tmp_path)
    assert loaded.tasks == model.tasks == ["depth", "normal", "point_segmentation", "lung"]
    assert isinstance(make_space(loaded.config), PixelSpace)
    expected = _predict(model, batch, generator=torch.Generator().manual_seed(0))
    actual = _predict(loaded, batch, generator=torch.Generator().manual_seed(0))
    assert torch.equal(expected, actual)


def test_from_pretrained_sd3_transformer(tmp_path: Path, batch: dict) -> None:
    from diffusers import SD3Transformer2DModel

    from .conftest import TEST_TRANSFORMER

    torch.manual_seed(0)
    SD3Transformer2DModel(**TEST_TRANSFORMER).save_pretrained(tmp_path / "sd3" / "transformer")
    model = DiceptionModel.from_transformer(tmp_path / "sd3", tasks=["depth", "normal"])
    reference = SD3Transformer2DModel.from_pretrained(tmp_path / "sd3" / "transformer")
    for key, value in reference.state_dict().items():
        assert torch.equal(model.transformer.state_dict()[key], value)
    assert model.points.gaussian.device.type == "cpu"
    assert torch.equal(model.points.gaussian, model.points._gaussian())
    assert model.config.space == "pixel" and model.tasks == ["depth", "normal"]
    out = _predict(model, dict(batch, task_id=batch["task_id"] % 2), one_step=True)
    assert torch.isfinite(out).all()

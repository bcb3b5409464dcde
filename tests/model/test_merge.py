"""`dicepipe predict --lora` and `dicepipe merge`: an adapter's new task from the command line,
and a merged plain folder that predicts as base + adapter does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dicepipe.cli import main
from dicepipe.imageio import decode_image
from dicepipe.model import DiceptionModel, add_lora, save_lora
from dicepipe.model.folder import INFERENCE_FILE, load_model_folder
from dicepipe.model.inference import load_checkpoint

from .conftest import SIZE, make_batch, make_model
from .test_inference import PHOTO


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("base") / "model"
    make_model().save_pretrained(str(folder))
    (folder / INFERENCE_FILE).write_text(json.dumps({"resolution": SIZE}))
    return folder


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, base) -> Path:
    """A rank-4 adapter with random (non-zero) weights and a `highlight` row."""
    model = DiceptionModel.from_pretrained(str(base))
    add_lora(model, rank=4, task="highlight")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return save_lora(model, tmp_path_factory.mktemp("adapter") / "lora", task="highlight")


def _velocity(model: DiceptionModel, task: str) -> torch.Tensor:
    batch = make_batch(2)
    ids = torch.full((2,), model.task_id(task))
    with torch.no_grad():
        return model(
            batch["target"], batch["image"], 500.0, ids, batch["points"], batch["point_mask"]
        )


def test_predict_uses_the_adapter_and_its_task(base, adapter, tmp_path, capsys):
    args = ["predict", "--checkpoint", str(base), "--steps", "2", "--task", "highlight"]
    assert main([*args, "--out", str(tmp_path / "plain"), str(PHOTO)]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'highlight'; this checkpoint knows" in err and "--lora DIR" in err
    assert main([*args, "--lora", str(adapter), "--out", str(tmp_path), str(PHOTO)]) == 0
    assert (tmp_path / "grace_hopper.highlight.png").stat().st_size > 0
    assert json.loads((tmp_path / "predict.json").read_text())["lora"] == str(adapter)


def test_the_merged_folder_predicts_as_base_plus_adapter(base, adapter, tmp_path):
    out = tmp_path / "merged"
    assert main(["merge", "--base", str(base), "--lora", str(adapter), "--out", str(out)]) == 0
    merged = load_model_folder(out, "cpu").model
    assert "highlight" in merged.tasks
    assert not any("lora" in name for name in merged.state_dict())
    adapted = load_checkpoint(base, "cpu", lora=adapter).model
    plain = load_model_folder(base, "cpu").model
    for task in ("depth", "highlight"):
        expected = _velocity(adapted, task)
        torch.testing.assert_close(_velocity(merged, task), expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(_velocity(plain, "depth"), _velocity(adapted, "depth"), atol=1e-3)

    for name, folder, extra in (("a", base, ["--lora", str(adapter)]), ("m", out, [])):
        args = ["predict", "--checkpoint", str(folder), "--task", "highlight", "--steps", "2"]
        assert main([*args, *extra, "--out", str(tmp_path / name), str(PHOTO)]) == 0
    images = [
        decode_image((tmp_path / n / "grace_hopper.highlight.png").read_bytes()).rgb.astype(int)
        for n in ("a", "m")
    ]
    assert np.abs(images[0] - images[1]).max() <= 1  # equal up to rounding of the float path
    info = json.loads((out / INFERENCE_FILE).read_text())
    assert info["resolution"] == SIZE and info["merged"]["task"] == "highlight"


def test_merge_refuses_an_existing_output_and_a_broken_adapter(base, adapter, tmp_path, capsys):
    args = ["merge", "--base", str(base), "--lora", str(adapter), "--out", str(base)]
    assert main(args) == 2
    assert capsys.readouterr().err == f"error: --out {base} already exists; give a new folder\n"
    broken = tmp_path / "lora"
    broken.mkdir()
    data = (adapter / "pytorch_lora_weights.safetensors").read_bytes()
    (broken / "pytorch_lora_weights.safetensors").write_bytes(data[:-10])
    args = ["merge", "--base", str(base), "--lora", str(broken), "--out", str(tmp_path / "m")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{broken}/pytorch_lora_weights.safetensors" in err and "truncated" in err
    args = ["predict", "--checkpoint", str(base), "--task", "highlight", "--lora", "nowhere"]
    assert main([*args, str(PHOTO)]) == 2
    assert capsys.readouterr().err == "error: LoRA adapter folder nowhere does not exist\n"
    assert not (tmp_path / "m").exists()

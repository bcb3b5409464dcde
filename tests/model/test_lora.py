"""LoRA few-shot: frozen base, small trainable share, diffusers-format save and load."""

from __future__ import annotations

from pathlib import Path

import torch

from dicepipe.model import (
    DiceptionModel,
    FlowConfig,
    PixelSpace,
    add_lora,
    flow_matching_loss,
    load_lora,
    predict,
    save_lora,
    trainable_fraction,
)

from .conftest import make_batch, make_model


def _train_step(model: DiceptionModel, batch: dict) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    loss, _ = flow_matching_loss(
        model, PixelSpace(), batch, generator=generator, config=FlowConfig()
    )
    loss.backward()
    optimizer.step()


def _lora_batch(model: DiceptionModel, task: int) -> dict:
    return dict(make_batch(2), task_id=torch.full((2,), task))


def test_only_lora_and_new_task_train(tmp_path: Path) -> None:
    model = make_model().train()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    task = add_lora(model, rank=4, task="lung", init_from="point_segmentation")
    assert task == 3
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in trainable if "lora" in n} | {
        "task_table.tokens.3",
        "task_table.pooled.3",
    }
    assert any(".to_q.lora_A" in n for n in trainable)
    assert not any("add_q_proj" in n for n in trainable)
    assert 0 < trainable_fraction(model) < 0.2

    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    _train_step(model, _lora_batch(model, task))
    state = model.state_dict()
    for key, value in base.items():
        peft_key = key.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        torch.testing.assert_close(state.get(key, state.get(peft_key)), value, rtol=0, atol=0)
    changed = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any(not torch.equal(dict(model.named_parameters())[n], before[n]) for n in changed)


def test_save_then_load_gives_same_predictions(tmp_path: Path) -> None:
    model = make_model().eval()
    model.save_pretrained(tmp_path / "base")
    task = add_lora(model, rank=4, task="lung")
    _train_step(model, _lora_batch(model, task))
    model.eval()
    save_lora(model, tmp_path / "lora", task="lung")
    assert (tmp_path / "lora" / "pytorch_lora_weights.safetensors").exists()
    assert (tmp_path / "lora" / "task_embedding.safetensors").exists()

    fresh = DiceptionModel.from_pretrained(tmp_path / "base")
    assert load_lora(fresh, tmp_path / "lora") == task
    batch = _lora_batch(model, task)

    def run(m: DiceptionModel) -> torch.Tensor:
        return predict(
            m, PixelSpace(), batch["image"], batch["task_id"], batch["points"],
            batch["point_mask"], steps=2, generator=torch.Generator().manual_seed(0),
        )  # fmt: skip

    torch.testing.assert_close(run(fresh), run(model))
    without = DiceptionModel.from_pretrained(tmp_path / "base")
    without.add_task("lung", fresh.task_table.tokens[task], fresh.task_table.pooled[task])
    assert not torch.allclose(run(without), run(model))


def test_saving_one_adapter_again_writes_the_same_bytes(tmp_path: Path) -> None:
    model = make_model()
    add_lora(model, rank=2, task="lung")
    written = set()
    for attempt in range(8):  # a metadata map in hash order would differ between saves
        folder = save_lora(model, tmp_path / str(attempt), task="lung")
        written.add((folder / "pytorch_lora_weights.safetensors").read_bytes())
    assert len(written) == 1

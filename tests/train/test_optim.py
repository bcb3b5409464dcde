"""Optimizer, lr schedule and EMA of a run: the diffusers/bitsandbytes pieces behind the params."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from dicepipe.model import DiceptionModel
from dicepipe.params.train import EmaParams, TrainParams
from dicepipe.train.curves import read_curves
from dicepipe.train.distributed import state_checksum
from dicepipe.train.loop import train
from dicepipe.train.optim import (
    BITSANDBYTES_MISSING,
    adamw_class,
    averaged_weights,
    can_fuse,
    make_ema,
    make_optimizer,
    make_scheduler,
)


def test_warmup_then_cosine_follows_diffusers_schedule():
    params = TrainParams(lr=1.0, steps=10, lr_scheduler="cosine", lr_warmup_steps=2)
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = make_optimizer(params, [weight])
    scheduler = make_scheduler(params, optimizer)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:3] == [0.0, 0.5, 1.0]
    assert rates[3] == pytest.approx(0.9619397662556434)  # 0.5 * (1 + cos(pi / 8))
    assert rates == sorted(rates[:3]) + sorted(rates[3:], reverse=True)


def test_adamw_is_fused_and_steps_as_the_loop_over_tensors_does():
    torch.manual_seed(0)
    start = [torch.randn(3, 4), torch.randn(4)]
    grads = [torch.randn(3, 4), torch.randn(4)]
    weights = {}
    for fused in (True, False):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        if fused:
            optimizer = make_optimizer(TrainParams(lr=0.1, weight_decay=0.01), params)
            assert optimizer.defaults["fused"] is True
        else:
            optimizer = torch.optim.AdamW(params, lr=0.1, weight_decay=0.01, foreach=False)
        for _ in range(3):
            for param, grad in zip(params, grads, strict=True):
                param.grad = grad.clone()
            optimizer.step()
        weights[fused] = params
    for a, b in zip(weights[True], weights[False], strict=True):
        torch.testing.assert_close(a, b)


def test_only_floating_parameters_on_cpu_or_cuda_are_fused():
    assert can_fuse([torch.nn.Parameter(torch.ones(2))])
    assert not can_fuse([])
    assert not can_fuse([torch.nn.Parameter(torch.ones(2, device="meta"))])


def test_8bit_adam_without_bitsandbytes_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(RuntimeError, match="train.use_8bit_adam needs bitsandbytes"):
        adamw_class(True)
    assert "use_8bit_adam: false" in BITSANDBYTES_MISSING


def test_8bit_adam_comes_from_bitsandbytes_when_importable(monkeypatch):
    class AdamW8bit(torch.optim.AdamW):
        pass

    fake = types.ModuleType("bitsandbytes")
    fake.optim = types.SimpleNamespace(AdamW8bit=AdamW8bit)
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    optimizer = make_optimizer(TrainParams(use_8bit_adam=True), [torch.nn.Parameter(torch.ones(2))])
    assert type(optimizer) is AdamW8bit
    assert adamw_class(False) is torch.optim.AdamW


def test_ema_weights_are_swapped_in_and_back():
    layer = torch.nn.Linear(2, 1)
    ema = make_ema(EmaParams(enabled=True, decay=0.5), layer)
    before = layer.weight.detach().clone()
    ema.step(layer.parameters())  # the first update copies (diffusers: decay 0 at step 1)
    with torch.no_grad():
        layer.weight.add_(1.0)
    ema.step(layer.parameters())  # step 2: decay min(0.5, 2/11), the shadow moves 9/11
    raw = layer.weight.detach().clone()
    with averaged_weights(ema, layer) as averaged:
        assert not torch.equal(averaged.weight, raw)
        assert torch.allclose(averaged.weight, before + 9 / 11, atol=1e-6)
    assert torch.equal(layer.weight, raw)
    assert make_ema(EmaParams(enabled=False), layer) is None


def test_the_logged_lr_follows_the_schedule(make_params):
    params, loader = make_params(steps=4, lr=1e-3, lr_scheduler="linear", lr_warmup_steps=2)
    train(params, loader)
    rates = read_curves(Path(params.output) / "live")["lr"][1]
    assert rates == pytest.approx([5e-4, 1e-3, 5e-4, 0.0])


def test_ema_run_saves_averaged_weights_and_resumes_exactly(make_params):
    ema = EmaParams(enabled=True, decay=0.9)
    straight, loader = make_params("straight", steps=4, checkpoint_every=2, ema=ema)
    train(straight, loader)
    out = Path(straight.output)
    final = DiceptionModel.from_pretrained(out / "model")
    raw = DiceptionModel.from_pretrained(out / "checkpoints" / "checkpoint-4" / "model")
    assert state_checksum(final) != state_checksum(raw)  # model/ holds the EMA, checkpoints not

    first, _ = make_params("resumed", steps=2, checkpoint_every=2, ema=ema)
    train(first, loader)
    second, _ = make_params("resumed", steps=4, checkpoint_every=2, ema=ema, resume="latest")
    train(second, loader)
    again = DiceptionModel.from_pretrained(Path(second.output) / "model")
    assert state_checksum(again) == state_checksum(final)

"""`finetune` section: few-shot LoRA on a new task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from dicepipe.config import bounded
from dicepipe.params.train import TrainFlowParams


@dataclass(frozen=True)
class FinetuneParams:
    """`finetune` stage: few-shot LoRA on a task the base model never saw (DICEPTION: rank 128
    on attention q, k, v, ~50 examples, a new prompt). Only the adapter and the new task's
    embedding train; the adapter is saved in diffusers' LoRA format."""

    SECTION: ClassVar[str] = "finetune"

    base: str = "runs/train/model"  # the trained model folder the adapter goes on
    task: Literal["highlight"] = "highlight"  # a registry task made here, not by encode
    shards: str = "data/shards"  # the images the few-shot pairs are made from
    sources: tuple[str, ...] = ("openimages", "sa1b", "coco", "coco_rem", "entityv2", "synthetic")
    examples: int = bounded(50, lo=1)  # training pairs (paper: 50)
    heldout: int = bounded(8, lo=0)  # further pairs scored after training
    resolution: int | None = bounded(None, lo=8)  # null: the base model's training resolution
    rank: int = bounded(128, lo=1)
    target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v")
    steps: int = bounded(200, lo=1)
    batch_size: int = bounded(8, lo=1)
    lr: float = 2e-5  # constant, AdamW (paper)
    seed: int = 0
    threads: int | None = bounded(None, lo=1)  # torch CPU threads; null: torch's default
    device: str = "auto"
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA
    gradient_checkpointing: bool = False
    flow: TrainFlowParams = field(default_factory=TrainFlowParams)  # as the base was trained
    output: str = "runs/finetune"  # lora/ (adapter + task row), loss.png
    metrics: str = "metrics/finetune.json"

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.target_modules:
            raise ValueError("target_modules must name at least one module")

"""Tiny random model folders and fast evaluation params for the evaluation tests."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from dicepipe.model.inference import INFERENCE_FILE
from dicepipe.params.evaluate import (
    BaselineParams,
    EvalSamplingParams,
    EvaluateParams,
    HeldoutParams,
    ReevaluateParams,
)
from tests.model.conftest import make_model

EVAL_TASKS = ("depth", "normal", "point_segmentation", "entity_segmentation", "pose")
RESOLUTION = 16  # the test transformer's pos_embed covers [noisy | input] at 16 x 16


def save_model(folder: Path, seed: int = 0, tasks: tuple[str, ...] = EVAL_TASKS) -> Path:
    """A seeded 16-px random model folder (save_pretrained + inference.json)."""
    make_model(seed, tasks=list(tasks)).save_pretrained(str(folder))
    (folder / INFERENCE_FILE).write_text(json.dumps({"resolution": RESOLUTION}))
    return folder


def fast_params(root: Path, **overrides: Any) -> EvaluateParams:
    """2 sampling steps, three 32x24 held-out scenes, two baseline scenes, outputs under
    `root`; keyword overrides replace fields."""
    defaults: dict[str, Any] = {
        "model": str(root / "model"),
        "device": "cpu",
        "batch_size": 16,
        "threads": 1,
        "max_prompted_masks": 3,
        "sampling": EvalSamplingParams(steps=2),
        "heldout": HeldoutParams(n=3, width=32, height=24, people_prob=1.0),
        "baseline": BaselineParams(scenes=2, shards=str(root / "no-shards")),
        "metrics": str(root / "metrics" / "eval.json"),
        "out": str(root / "metrics" / "eval"),
        "previews": 2,
        "reevaluate": ReevaluateParams(
            checkpoints=(str(root / "runs" / "checkpoints" / "checkpoint-*" / "model"),),
            history=str(root / "metrics" / "history"),
            log=str(root / "metrics" / "history.jsonl"),
            plot=str(root / "metrics" / "history.png"),
        ),
    }
    return EvaluateParams(**{**defaults, **overrides})


def write_params(path: Path, params: EvaluateParams) -> Path:
    """A params.yaml holding just the `evaluate` section of `params`."""
    section = json.loads(json.dumps(asdict(params)))  # tuples -> lists
    path.write_text(yaml.safe_dump({"evaluate": section}, sort_keys=False))
    return path

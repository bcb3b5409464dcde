"""The model card (`README.md`) of a saved model folder: what trained it, on what data, and
how far it got."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dicepipe.storage import atomic_write

from .folder import CARD_FILE

_HEADLINE = ("steps", "first_loss", "final_loss", "parameters", "world_size")
#: Figures of the run rather than of the model (wall times, speed, where it resumed): kept in
#: the train metrics, left out of the card, so the same seed writes the same model folder.
RUN_DEPENDENT = ("train_time_s", "step_time_s", "samples_per_s", "resumed_from")


def render_model_card(
    params: Mapping[str, Any], inference: Mapping[str, Any], metrics: Mapping[str, Any]
) -> str:
    """The card's markdown from the training params, the folder's inference settings (the
    resolution, and the shards with their manifest sha256) and the final train metrics but
    the run's own timings (`RUN_DEPENDENT`)."""
    trained_on = inference.get("trained_on") or {}
    sha = trained_on.get("manifest_sha256")
    metrics = {k: v for k, v in metrics.items() if k not in RUN_DEPENDENT}
    headline = {k: metrics[k] for k in _HEADLINE if k in metrics}
    lines = [
        "---",
        "library_name: diffusers",
        "tags: [dicepipe, diception, sd3, dense-prediction]",
        "---",
        "",
        "# DICEPTION-style generalist perception model",
        "",
        "One SD3 MMDiT predicting depth, normals, point-prompted, entity and semantic",
        "segmentation and pose as RGB images. Load this folder with",
        "`dicepipe predict --checkpoint <this folder> --task depth image.jpg`.",
        "",
        "## Data",
        "",
        f"- shards: `{trained_on.get('shards', 'unknown')}`",
        f"- manifest.json sha256: `{sha or 'unknown (no manifest)'}`",
        f"- resolution: {inference.get('resolution')} px, "
        f"{'latent space (vae/)' if inference.get('vae') else 'pixel space'}",
        "",
        "## Final train metrics",
        "",
        *(f"- {name}: {_value(value)}" for name, value in headline.items()),
        "",
        "```json",
        json.dumps(dict(metrics), indent=1, sort_keys=True, default=str),
        "```",
        "",
        "## Training params (`train` section)",
        "",
        "```json",
        json.dumps(dict(params), indent=1, sort_keys=True, default=str),
        "```",
        "",
    ]
    return "\n".join(lines)


def _value(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def write_model_card(
    folder: str | Path, params: Any, inference: Mapping[str, Any], metrics: Mapping[str, Any]
) -> Path:
    """Write `README.md` into a saved model folder (atomically); `params` is the train section
    (a dataclass or a mapping). Its path."""
    values = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)
    text = render_model_card(values, inference, metrics)
    path = Path(folder) / CARD_FILE
    atomic_write(path, lambda handle: handle.write(text.encode()))
    return path

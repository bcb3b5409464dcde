"""What a model teacher's labels depend on: every `label` parameter but the run-only ones.

The identity is built by exclusion, so a parameter added to `LabelParams` (or to one of its
nested sections) changes the identity, and so invalidates cached labels, unless it is listed
here as run-only: forgetting to list a knob costs a re-label, never stale labels.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dicepipe.params.label import LabelParams
from dicepipe.storage import digest_of

# Knobs that change how labels are produced, not what they are (dotted paths for nested
# sections). The device and torch's thread count are NOT here: both change float results.
RUN_ONLY = frozenset(
    {
        "teacher",  # which teacher routes items; the identity string names it
        "allow_download",  # where weights come from, not which weights (`weights` names them)
        "ground_truth_dir",  # exact labels: the ground-truth teacher's own identity
        "sources",  # which items are labelled, not their labels
        "batch_size",  # every image is resized to the model's input: no padding across items
        "num_workers",  # decoding threads ahead of the teacher
        "cache_dir",  # where labels are kept
        "runner",  # which Prefect task runner executes the units
    }
)


def output_settings(
    params: Any, run_only: frozenset[str] | None = None, prefix: str = ""
) -> dict[str, Any]:
    """Every field of the dataclass `params`, nested dataclasses as dicts of their own fields,
    except the fields whose dotted path (from `prefix`) is in `run_only` (None: `RUN_ONLY`)."""
    run_only = RUN_ONLY if run_only is None else run_only
    settings = {}
    for field in dataclasses.fields(params):
        path = f"{prefix}{field.name}"
        if path in run_only:
            continue
        value = getattr(params, field.name)
        if dataclasses.is_dataclass(value):
            value = output_settings(value, run_only, f"{path}.")
        settings[field.name] = value
    return settings


def model_identity(params: LabelParams, device_type: str) -> str:
    """The identity of the model teacher `params` build, known before building it (the `auto`
    teacher's fallback part): its output settings, with `device` as the resolved device type
    (`auto` means different devices on different machines)."""
    settings = output_settings(params)
    settings["device"] = device_type
    return f"depth_pro:{digest_of(settings)}"

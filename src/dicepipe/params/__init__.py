"""The schema of every `params.yaml` section: one module per stage section.

`sample`, `label`, `composite`, `encode`, `loader`, `train`, `evaluate` and `finetune` each hold
their section's frozen dataclass (its `SECTION` names the section), with `runner` and `points`
the vocabulary several data sections share. A stage imports only the modules of its own
sections, so its code identity (`dicepipe.codescope`) covers only their schemas: a new
training knob never makes a data unit stale. Load a section with
`dicepipe.config.load_params(TrainParams, path)`; `schema("train")` finds a class by name
without importing every section.
"""

from __future__ import annotations

import importlib

# Section name -> "module:class", imported on demand (see the module docstring).
SECTIONS: dict[str, str] = {
    "sample": "dicepipe.params.sample:SampleParams",
    "label": "dicepipe.params.label:LabelParams",
    "composite": "dicepipe.params.composite:CompositeStageParams",
    "encode": "dicepipe.params.encode:EncodeParams",
    "loader": "dicepipe.params.loader:LoaderParams",
    "train": "dicepipe.params.train:TrainParams",
    "evaluate": "dicepipe.params.evaluate:EvaluateParams",
    "finetune": "dicepipe.params.finetune:FinetuneParams",
}


def schema(section: str) -> type:
    """The dataclass of the params section `section`."""
    if section not in SECTIONS:
        raise KeyError(f"unknown params section {section!r}; known: {', '.join(SECTIONS)}")
    module, _, name = SECTIONS[section].partition(":")
    return getattr(importlib.import_module(module), name)

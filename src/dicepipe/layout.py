"""Where each data stage reads and writes: the one declaration of the data folders.

The flows take these as their default arguments, `dicepipe.entry.flow_main` as the defaults
of their `--NAME DIR` options, and `dvc.yaml` lists them as the stages' deps and outs (a test
holds the two together).
"""

from __future__ import annotations

SAMPLES = "data/work/samples"
LABELS = "data/work/labels"
COMPOSITES = "data/work/composites"
SHARDS = "data/shards"
ENCODE_WORK = "data/work/encode"

# Each data stage's folder arguments, in the order of its flow's arguments after params_path.
STAGE_FOLDERS: dict[str, dict[str, str]] = {
    "sample": {"out": SAMPLES},
    "label": {"samples": SAMPLES, "out": LABELS},
    "composite": {"samples": SAMPLES, "out": COMPOSITES},
    "encode": {
        "samples": SAMPLES,
        "labels": LABELS,
        "composites": COMPOSITES,
        "shards": SHARDS,
        "work": ENCODE_WORK,
    },
}

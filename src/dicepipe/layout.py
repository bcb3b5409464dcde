"""Where things live: the data folders of each stage, and the cache.

The flows take these as their default arguments, `dicepipe.entry.flow_main` as the defaults
of their `--NAME DIR` options, and `dvc.yaml` lists them as the stages' deps and outs (a test
holds the two together).
"""

from __future__ import annotations

import os
from pathlib import Path

# The project's caches (Prefect's home, Hugging Face, numba, encoded prompts, foregrounds);
# DICEPIPE_CACHE moves them.
CACHE_DIR = Path(".cache")


def cache_dir() -> Path:
    """The cache folder in use: `$DICEPIPE_CACHE`, else `.cache` of the working directory."""
    return Path(os.environ.get("DICEPIPE_CACHE", CACHE_DIR))


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

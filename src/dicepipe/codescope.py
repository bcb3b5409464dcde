"""Stage-scoped code identity: which package sources each stage runs, and their digest.

`STAGE_CODE` is the one declaration. It gives each stage's unit fingerprints their code
digest (`stage_code_version`), so editing training code never makes data units stale, and it
is what `dvc.yaml` lists as the stage's code deps (a test checks both, and that every module a
stage imports, transitively inside `dicepipe`, is covered: `import_closure`).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

# What every stage runs: the package face, params parsing, errors, the offline environment,
# the command-line entry, the data layout, the task registry, storage. `params/__init__.py`
# only names the sections; each stage adds its own sections' modules below.
_CORE = (
    "__init__.py",
    "config.py",
    "entry.py",
    "environment.py",
    "errors.py",
    "layout.py",
    "params/__init__.py",
    "storage.py",
    "tasks.py",
)
# What the data stages share besides: this module, the schemas, the Prefect runner, the stage
# helpers.
_SHARED = (
    *_CORE,
    "codescope.py",
    "params/runner.py",
    "records.py",
    "runtime.py",
    "pipeline/__init__.py",
    "pipeline/summary.py",
    "pipeline/units.py",
)

# What training and few-shot finetuning share: the model, the shard loader, checkpoints.
_MODEL_TRAINING = (
    *_CORE,
    "params/loader.py",
    "params/train.py",
    "imageio.py",
    "sampling.py",
    "weights.py",
    "shards/__init__.py",
    "shards/manifest.py",
    "model",
    "targets",  # the loader's flips recolour pose limbs (train/augment.py)
    "train/__init__.py",
    "train/augment.py",
    "train/build.py",
    "train/checkpoints.py",
    "train/shared.py",
    "train/loader.py",
)

# Package-relative files and folders (every `.py` below a folder) of each stage.
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "sample": (
        *_SHARED,
        "params/points.py",
        "params/sample.py",
        "imageio.py",
        "sampling.py",
        "sources",
        "pipeline/sample.py",
    ),
    "label": (
        *_SHARED,
        "params/label.py",
        "params/points.py",  # the synthetic renderer's params (ground-truth re-rendering)
        "params/sample.py",
        "imageio.py",
        "sampling.py",
        "weights.py",
        "teachers",
        "sources/__init__.py",
        "sources/common.py",
        "sources/synthetic",  # the ground-truth teacher re-renders synthetic scenes
        "pipeline/label.py",
    ),
    "composite": (
        *_SHARED,
        "params/composite.py",
        "params/points.py",
        "imageio.py",
        "sampling.py",
        "composite",
        "shards/__init__.py",
        "shards/preview.py",
        "sources/__init__.py",
        "sources/common.py",
        "sources/matting.py",
        "pipeline/composite.py",
    ),
    "encode": (
        *_SHARED,
        "params/encode.py",
        "params/points.py",
        "imageio.py",
        "sampling.py",
        "targets",
        "shards",
        "pipeline/encode.py",
        "pipeline/examples.py",
    ),
    # Not _SHARED: training runs no Prefect units, so data-stage plumbing is not its code.
    "train": (
        *_MODEL_TRAINING,
        "shards/preview.py",
        "train/curves.py",
        "train/distributed.py",
        "train/loop.py",
        "train/optim.py",
        "train/previews.py",
    ),
    "finetune": (*_MODEL_TRAINING, "params/finetune.py", "train/finetune.py"),
    # The evaluation stage (stages/evaluate.py); the scheduled flows/reevaluate.py runs it too.
    "evaluate": (
        *_CORE,
        "params/evaluate.py",
        "params/points.py",  # the held-out scenes are rendered with the synthetic source's
        "params/runner.py",  # schema (params/sample.py); re-evaluation's runner
        "params/sample.py",
        "records.py",
        "imageio.py",
        "sampling.py",
        "weights.py",
        "model",
        "metrics",
        "targets",
        "shards/__init__.py",
        "shards/preview.py",
        "sources/__init__.py",
        "sources/common.py",
        "sources/coco_checks.py",  # the COCO rules sampling uses, for COCO val
        "sources/synthetic",  # held-out scenes and the mean-training-scene baselines
        "evaluate/__init__.py",
        "evaluate/benchmarks",
        "evaluate/baselines.py",
        "evaluate/dense.py",
        "evaluate/heldout.py",
        "evaluate/objects.py",
        "evaluate/predict.py",
        "evaluate/report.py",
        "evaluate/run.py",
        "evaluate/scorers.py",
        "evaluate/scoring.py",
    ),
}


def stage_files(stage: str) -> list[Path]:
    """The package source files in a stage's scope, sorted."""
    if stage not in STAGE_CODE:
        raise KeyError(f"unknown stage {stage!r}; declared: {', '.join(sorted(STAGE_CODE))}")
    files: set[Path] = set()
    for entry in STAGE_CODE[stage]:
        path = PACKAGE_DIR / entry
        files.update(path.rglob("*.py") if path.is_dir() else [path])
    return sorted(files)


@cache
def stage_code_version(stage: str) -> str:
    """A digest of the sources in a stage's scope: part of every unit fingerprint of the stage,
    so units written by other code of that stage are never reused as finished."""
    digest = hashlib.sha256()
    for path in stage_files(stage):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def imported_modules(path: Path) -> set[str]:
    """Every `dicepipe` module a source file imports, at any depth (function-local too).

    `from dicepipe.x import y` counts `dicepipe.x` and, when it is a module, `dicepipe.x.y`.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "dicepipe")
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node.module, node.level)
            if module is None or module.split(".")[0] != "dicepipe":
                continue
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return {name for name in found if module_file(name) is not None}


def _absolute(path: Path, module: str | None, level: int) -> str | None:
    """The absolute name of a (possibly relative) `from ... import` in the file `path`."""
    if level == 0:
        return module
    try:
        parts = list(path.resolve().relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    except ValueError:
        return None  # a relative import outside the package
    if parts[-1] == "__init__":
        parts = parts[:-1]
    base = parts[: len(parts) - level + (1 if path.name == "__init__.py" else 0)]
    return ".".join([*base, module] if module else base)


def module_file(name: str) -> Path | None:
    """The source file of a `dicepipe` module name (a package's `__init__.py`), or None."""
    base = PACKAGE_DIR.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def import_closure(entries: Iterable[Path]) -> set[Path]:
    """The package files that `entries` import, transitively, with every parent package's
    `__init__.py` (importing `a.b.c` runs `a/__init__` and `a/b/__init__`)."""
    todo = list(entries)
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        for name in imported_modules(path):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                file = module_file(".".join(parts[:depth]))
                if file is not None and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return seen

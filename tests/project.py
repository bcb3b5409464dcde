"""A temporary copy of the project for end-to-end runs: its files, params overrides, git and
DVC initialised, commands run with this interpreter's tools, and file digests to compare."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = (
    "dvc.yaml",
    "params.yaml",
    "pyproject.toml",
    "flows",
    "stages",
    "src",
    "data/sample",
    "models",
    ".dvcignore",
)
DATA_STAGES = ("sample", "label", "composite", "encode")
# The data stages cut to a few units each: every source and stage still runs.
QUICK_DATA = {
    ("sample", "synthetic", "n"): 20,
    ("sample", "synthetic", "per_unit"): 10,
    ("composite", "count"): 6,
    ("composite", "per_unit"): 3,
}
# Every stage on every source, each cut to a few units: the data stages as QUICK_DATA,
# training, evaluation and finetune to a smoke size (finetune's pairs within those images).
QUICK_REPRO = {
    **QUICK_DATA,
    ("train", "steps"): 6,
    ("train", "checkpoint_every"): 3,
    ("evaluate", "heldout", "n"): 2,
    ("evaluate", "baseline", "scenes"): 4,
    ("evaluate", "previews"): 2,
    ("finetune", "examples"): 20,
    ("finetune", "heldout"): 4,
    ("finetune", "steps"): 6,
}
Overrides = Mapping[tuple[str, ...], Any]


def project_env(cwd: Path) -> dict[str, str]:
    """The environment of a command in the copy: this interpreter's tools first on PATH, the
    copy's own `src` first on PYTHONPATH and DVC's site cache inside the copy (the rest,
    offline and quiet, comes from conftest)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    # The copy runs the code it was copied with, the code DVC hashes as its deps, even while
    # the working tree's `src` (the editable install) changes.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd / "src"), env.get("PYTHONPATH")]))
    env["DVC_SITE_CACHE_DIR"] = str(cwd / ".cache" / "dvc-site")
    return env


def run(args: list[str], cwd: Path, timeout: float = 600) -> str:
    """Run a command in `cwd`; its output, after asserting that it succeeded."""
    result = subprocess.run(
        args, cwd=cwd, env=project_env(cwd), capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def dvc(*args: str, cwd: Path, timeout: float = 600) -> str:
    """Run `dvc ARGS` with this interpreter in `cwd`; its output (asserting success)."""
    return run([sys.executable, "-m", "dvc", *args], cwd, timeout)


def set_params(root: Path, overrides: Overrides) -> None:
    """Set `params.yaml` values of the copy, each named by its path of keys."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    for path, value in overrides.items():
        section = params
        for key in path[:-1]:
            section = section[key]
        section[path[-1]] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def copy_project(root: Path, overrides: Overrides | None = None) -> Path:
    """Copy the project's files to `root`, apply `overrides`, and initialise git and DVC."""
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    set_params(root, overrides or {})
    run(["git", "init", "-q"], root)
    dvc("init", "-q", cwd=root)
    return root


def digests(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under `folder` by relative path, but for names in `skip`."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in skip
    }


def data_digests(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file the data stages wrote (`data/shards`, `data/work`) by its path
    relative to `data/`, but for the paths in `skip`."""
    found = {
        f"{name}/{path}": digest
        for name in ("shards", "work")
        for path, digest in digests(root / "data" / name).items()
    }
    return {path: digest for path, digest in found.items() if path not in skip}


def temporaries(folder: Path) -> list[str]:
    """Temporary files under `folder`: `storage.atomic_path`'s `.<name>.<random>.tmp` and any
    other `*.tmp` (DVC's own partial files are `<name>.<random>.tmp`)."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*.tmp"))


class ReproducedProject(NamedTuple):
    """A copy of the project after `dvc repro`, and what its data stages wrote, hashed then
    (`data_digests`, DVC's `.gitignore` files left out): tests may change the copy later."""

    root: Path
    data: dict[str, str]


def reproduce(folder: Path, overrides: Overrides = QUICK_REPRO) -> ReproducedProject:
    """`dvc repro` in a new copy of the project under `folder` with `overrides`."""
    root = copy_project(folder, overrides)
    dvc("repro", cwd=root)
    written = data_digests(root)
    return ReproducedProject(
        root, {k: v for k, v in written.items() if not k.endswith(".gitignore")}
    )

"""Training checkpoints: written under a temporary name, renamed into place when complete.

A checkpoint folder `checkpoint-<step>` holds `state/` (accelerate: model, optimizer, RNG of
every rank), `model/` (a self-contained model folder, see `dicepipe.model.folder`), one
`loader-rank<r>.json` per rank (the loader position) and `trainer.json` (step, run digest,
the run's time so far), written last. Only folders with that name and a `trainer.json` count,
so a run killed while saving leaves a `.tmp-checkpoint-<step>` that resume ignores and the
next save replaces.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from dicepipe.model.folder import CONFIG_FILE, INFERENCE_FILE, PROMPTS_FILE, VAE_DIR, WEIGHTS_FILE
from dicepipe.storage import write_json

PATTERN = re.compile(r"^checkpoint-(\d+)$")
MARKER = "trainer.json"


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint after `step` optimizer steps."""
    return f"checkpoint-{step}"


def temporary_dir(root: Path, step: int) -> Path:
    """Where every rank writes the checkpoint of `step` before it is complete (same on all)."""
    return root / f".tmp-{checkpoint_name(step)}"


def loader_state_file(folder: Path, rank: int) -> Path:
    """The loader state of one rank inside a checkpoint."""
    return folder / f"loader-rank{rank}.json"


def complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint under `root`, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = PATTERN.match(path.name)
        if match and (path / MARKER).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_trainer(folder: Path) -> dict[str, Any]:
    """The `trainer.json` of a checkpoint (step, digest, time so far)."""
    return json.loads((folder / MARKER).read_text())


def find_resume(root: Path, resume: str | None, digest: str) -> Path | None:
    """The checkpoint a run continues from: None, the newest complete one made with the same
    params (`latest`), or the folder `resume` names (which must be complete)."""
    if resume is None:
        return None
    if resume == "latest":
        matching = [p for _, p in complete_checkpoints(root) if read_trainer(p)["digest"] == digest]
        return matching[-1] if matching else None
    folder = Path(resume)
    if not (folder / MARKER).is_file():
        raise FileNotFoundError(f"train.resume: {folder} is not a complete checkpoint")
    return folder


def clear(root: Path) -> None:
    """Remove every checkpoint (complete or not) under `root`: a run that starts over."""
    if root.is_dir():
        for path in root.iterdir():
            if PATTERN.match(path.name) or path.name.startswith(".tmp-checkpoint-"):
                shutil.rmtree(path)


def prune(root: Path, keep: int) -> None:
    """Keep the newest `keep` complete checkpoints; remove older ones and stale temporaries."""
    for _, path in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(path)
    for path in root.glob(".tmp-checkpoint-*"):
        shutil.rmtree(path)


def publish(temporary: Path, final: Path) -> None:
    """Rename a finished folder into place, replacing an older one of the same name."""
    if final.exists():
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        temporary.rename(final)
        shutil.rmtree(old)
    else:
        temporary.rename(final)


def save_model_folder(model: Any, folder: Path, inference: dict[str, Any]) -> None:
    """`save_pretrained` plus the `inference.json` that prediction and evaluation read.

    The VAE and the encoded prompts that `inference` names by source path are copied into the
    folder and named relative to it, so the folder works wherever it is moved.
    """
    model.save_pretrained(folder)
    written = dict(inference)
    if inference.get("vae"):
        copy_vae(Path(inference["vae"]), folder / VAE_DIR)
        written["vae"] = VAE_DIR
    prompts = inference.get("prompts")
    if prompts and Path(prompts).is_file():
        shutil.copyfile(prompts, folder / PROMPTS_FILE)
        written["prompts"] = PROMPTS_FILE
    else:
        written.pop("prompts", None)
    write_json(folder / INFERENCE_FILE, written)


def copy_vae(source: Path, target: Path) -> None:
    """Copy a VAE folder's config and safetensors weights (a hub cache's links resolved)."""
    target.mkdir(parents=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copyfile(source / name, target / name)


def save_checkpoint(run: Any, step: int) -> Path:
    """Write the checkpoint of `step` from every rank of `run` (a `loop.Run`); its folder.

    Collective: every rank calls it. Each writes its RNG and loader state, the main process
    the weights, optimizer, model folder and, last, `trainer.json`; then it is renamed. With
    `train.checkpoint_url` the folder is on each machine's own disk, so the first rank of every
    machine prepares and renames its copy (`train.shared` uploads them).
    """
    accelerator, root = run.accelerator, run.paths.checkpoints
    node_local = run.params.checkpoint_url is not None
    owner = accelerator.is_local_main_process if node_local else accelerator.is_main_process
    tmp = temporary_dir(root, step)
    if owner:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp / "state"))
    write_json(loader_state_file(tmp, accelerator.process_index), run.dataset.state_dict())
    accelerator.wait_for_everyone()
    final = root / checkpoint_name(step)
    if accelerator.is_main_process:
        save_model_folder(accelerator.unwrap_model(run.model), tmp / "model", run.inference)
        write_json(tmp / MARKER, {"step": step, "digest": run.digest, **run.timing.record()})
    if owner:
        publish(tmp, final)
    if accelerator.is_main_process:
        prune(root, run.params.keep_checkpoints)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(run: Any, folder: Path) -> int:
    """Restore model, optimizer, RNG and the loader position; the step it was at.

    The loader merges every saved rank's state, so a run resumed on another world size goes
    on with the same passes over the shards (the loader deals the rest afresh)."""
    run.accelerator.load_state(str(folder / "state"))
    paths = sorted(folder.glob("loader-rank*.json"))  # loader_state_file of every rank
    run.dataset.load_state_dict([json.loads(path.read_text()) for path in paths])
    return int(read_trainer(folder)["step"])

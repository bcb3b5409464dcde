"""Checkpoints on node-local disks, mirrored to one shared URL (`train.checkpoint_url`).

Every machine writes a checkpoint to its own disk (`<output>/checkpoints`) as on one machine:
accelerate's model and optimizer state and the model folder on the main machine, each rank's
RNG and loader state on the rank's machine. Then the first rank of every machine uploads what
its disk holds of the checkpoint to `<url>/checkpoint-<step>/` and, once all have, the main
process uploads `trainer.json`, last: on the shared store as on disk, a checkpoint without it
is incomplete and never resumed from. To resume (on any machines, any world size), the first
rank of every machine downloads the newest complete shared checkpoint of the same run to its
disk, unless the disk already holds it complete.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dicepipe.storage import Location, is_remote, listing, location, put_file
from dicepipe.train import checkpoints


def shared_checkpoints(url: str) -> list[tuple[int, Location]]:
    """(step, location) of every complete checkpoint under `url`, oldest first."""
    found = []
    for path in listing(location(url), "checkpoint-*"):
        match = checkpoints.PATTERN.match(path.name)
        if match and (path / checkpoints.MARKER).exists():
            found.append((int(match.group(1)), path))
    return sorted(found, key=lambda pair: pair[0])


def latest_shared(url: str, digest: str) -> Location | None:
    """The newest complete checkpoint under `url` made by a run of this digest, or None."""
    matching = [
        path
        for _, path in shared_checkpoints(url)
        if json.loads((path / checkpoints.MARKER).read_text())["digest"] == digest
    ]
    return matching[-1] if matching else None


def upload(folder: Path, url: str, *, marker: bool) -> None:
    """Upload every file under the local checkpoint `folder` to `<url>/<folder name>/`, the
    marker only when `marker` (the main process sends it alone, after every machine)."""
    target = location(url) / folder.name
    for path in sorted(folder.rglob("*")):
        if path.is_file() and (path.name == checkpoints.MARKER) == marker:
            put_file(path, target / path.relative_to(folder).as_posix())


def download(shared: Location, root: Path) -> Path:
    """Copy the shared checkpoint `shared` into `root` (complete, renamed into place); the
    local folder."""
    final = root / shared.name
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".download-{shared.name}.", dir=root))
    try:
        if is_remote(shared):
            shared.fs.get(f"{shared.path}/", f"{scratch}/", recursive=True)
        else:
            shutil.copytree(shared, scratch, dirs_exist_ok=True)
        checkpoints.publish(scratch, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def prune_shared(url: str, keep: int) -> None:
    """Keep the newest `keep` complete shared checkpoints; remove older ones."""
    for _, path in shared_checkpoints(url)[:-keep]:
        _remove(path)


def clear_shared(url: str) -> None:
    """Remove every shared checkpoint, complete or not: a run that starts over."""
    for path in listing(location(url), "checkpoint-*"):
        if checkpoints.PATTERN.match(path.name):
            _remove(path)


def _remove(path: Location) -> None:
    if is_remote(path):
        path.fs.rm(path.path, recursive=True)
        path.fs.invalidate_cache(path.parent.path)
    else:
        shutil.rmtree(path)


def mirror(run: Any, step: int, folder: Path) -> None:
    """Collective, after `checkpoints.save_checkpoint(run, step)` on node-local disks: upload
    each machine's part, then the marker; prune the shared store; drop the local copies of
    machines other than the main one (they keep no complete checkpoint of their own)."""
    accelerator, url = run.accelerator, run.params.checkpoint_url
    if accelerator.is_local_main_process:
        upload(folder, url, marker=False)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        upload(folder, url, marker=True)
        prune_shared(url, run.params.keep_checkpoints)
    elif accelerator.is_local_main_process:
        shutil.rmtree(folder, ignore_errors=True)
    accelerator.wait_for_everyone()


def fetch_resume(run: Any) -> Path | None:
    """Collective: the local folder of the checkpoint to resume from with a shared URL (the
    newest complete shared one of this run, downloaded where a machine lacks it), or None."""
    accelerator, params = run.accelerator, run.params
    if params.resume is None:
        return None
    if params.resume != "latest":
        return checkpoints.find_resume(run.paths.checkpoints, params.resume, run.digest)
    shared = latest_shared(params.checkpoint_url, run.digest)
    if shared is None:
        return None
    local = run.paths.checkpoints / shared.name
    if accelerator.is_local_main_process and not (local / checkpoints.MARKER).is_file():
        download(shared, run.paths.checkpoints)
    accelerator.wait_for_everyone()
    return local


def start_over(run: Any) -> None:
    """Collective: remove this run's checkpoints, on the shared store (the main process) and
    on every machine's disk (its first rank)."""
    accelerator = run.accelerator
    if accelerator.is_main_process:
        clear_shared(run.params.checkpoint_url)
    if accelerator.is_local_main_process:
        checkpoints.clear(run.paths.checkpoints)
    accelerator.wait_for_everyone()

"""Checkpoint history: every model folder evaluated exactly once, by the content of its weights.

A checkpoint is identified by the sha256 of its safetensors file (of the sorted
"name sha256" lines when there are several), so a renamed or copied folder is not evaluated
again, and the final model (usually the last checkpoint's weights) is a duplicate. A folder
that cannot be evaluated yet (no `config.json`, no weights, a truncated or garbled
safetensors file: training still writing, or a crash) is reported and left for a later run.

The record `<history>/<sha256>.json`, written atomically after the evaluation, is the
completion marker; `history.jsonl` is derived from the markers (`sync_log`, one line per
identity, rewritten through a temporary file and a rename), so a run killed between the two
loses nothing. One run at a time holds `<history>/.lock`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from glob import glob
from pathlib import Path
from typing import Any

from dicepipe.params.evaluate import EvaluateParams, ReevaluateParams
from dicepipe.storage import atomic_write, digest_of, safetensors_shapes, sha256_file, write_json

STEP = re.compile(r"checkpoint-(\d+)")


class CheckpointError(ValueError):
    """A model folder that cannot be evaluated (yet): the message says why."""


class HistoryBusy(RuntimeError):
    """Another re-evaluation run holds the history lock."""


@dataclass(frozen=True)
class Checkpoint:
    """A model folder found by the globs, with its identity (None when broken) and step."""

    folder: str
    step: int | None
    sha256: str | None = None
    problem: str = ""


@dataclass
class Plan:
    """What a run does: evaluate `pending`, skip `done` and `duplicates`, report `broken`."""

    pending: list[Checkpoint] = field(default_factory=list)
    done: list[Checkpoint] = field(default_factory=list)
    duplicates: list[Checkpoint] = field(default_factory=list)
    broken: list[Checkpoint] = field(default_factory=list)


def step_of(folder: str | Path) -> int | None:
    """The training step a folder's path names (`.../checkpoint-<step>/...`), else None."""
    for part in reversed(Path(folder).parts):
        match = STEP.fullmatch(part)
        if match:
            return int(match.group(1))
    return None


def find_checkpoints(patterns: tuple[str, ...]) -> list[Path]:
    """Folders matching the globs (each once), by step, folders without a step last."""
    found: dict[Path, Path] = {}
    for pattern in patterns:
        for name in sorted(glob(pattern)):
            path = Path(name)
            if path.is_dir():
                found.setdefault(path.resolve(), path)
    return sorted(found.values(), key=lambda p: (step_of(p) is None, step_of(p) or 0, str(p)))


def check_safetensors(path: Path) -> None:
    """CheckpointError unless `path` is a complete safetensors file: an 8-byte header length,
    a JSON header, and tensor data that ends exactly at the end of the file."""
    try:
        safetensors_shapes(path)
    except ValueError as error:
        raise CheckpointError(f"{path.name}: {error}") from None


def weights_identity(folder: str | Path) -> str:
    """The sha256 identity of a complete model folder; CheckpointError when it is not one."""
    folder = Path(folder)
    try:
        json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise CheckpointError("no config.json (still being written?)") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"config.json unreadable: {error}") from None
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError("no *.safetensors weights (still being written?)")
    for path in files:
        check_safetensors(path)
    lines = [f"{path.name} {sha256_file(path)}" for path in files]
    if len(lines) == 1:
        return lines[0].rsplit(" ", 1)[1]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def record_path(history: str | Path, sha256: str) -> Path:
    """Where the record (completion marker) of an identity lives."""
    return Path(history) / f"{sha256}.json"


def plan(params: ReevaluateParams) -> Plan:
    """Sort every checkpoint the globs find into pending, done, duplicate and broken."""
    result, seen = Plan(), set()
    for folder in find_checkpoints(params.checkpoints):
        step = step_of(folder)
        try:
            identity = weights_identity(folder)
        except (CheckpointError, OSError) as error:
            result.broken.append(Checkpoint(str(folder), step, problem=str(error)))
            continue
        found = Checkpoint(str(folder), step, identity)
        if identity in seen:
            result.duplicates.append(found)
        elif record_path(params.history, identity).is_file():
            result.done.append(found)
        else:
            result.pending.append(found)
        seen.add(identity)
    return result


def headline_values(metrics: dict[str, Any]) -> dict[str, float]:
    """`benchmark/task/metric/system` -> value of every headline metric."""
    from dicepipe.evaluate.report import headline

    values = {}
    for row in headline(metrics):
        for system in ("model", "baseline"):
            if row[system] is not None:
                values[f"{row['label']}/{system}"] = row[system]
    return values


def evaluate_checkpoint(
    checkpoint: Checkpoint, params: EvaluateParams, progress: bool = False
) -> dict[str, Any]:
    """Evaluate one pending checkpoint and write its record; the record. CheckpointError when
    the weights changed while it was evaluated (nothing is written then)."""
    from dicepipe.evaluate.run import evaluate_model

    started = _now()
    evaluation = evaluate_model(checkpoint.folder, params, progress=progress)
    if weights_identity(checkpoint.folder) != checkpoint.sha256:
        raise CheckpointError("the weights changed while being evaluated")
    evaluated_params = replace(params, reevaluate=ReevaluateParams())
    record = {
        **asdict(checkpoint),
        "started_at": started,
        "evaluated_at": _now(),
        "params_digest": digest_of(asdict(evaluated_params)),
        "headline": headline_values(evaluation.metrics),
        "metrics": evaluation.metrics,
        "skipped": evaluation.skipped,
    }
    record.pop("problem")
    write_json(record_path(params.reevaluate.history, checkpoint.sha256 or ""), record)
    return record


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def read_log(log: str | Path) -> list[dict[str, Any]]:
    """The records of `history.jsonl` (empty when absent)."""
    path = Path(log)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sync_log(history: str | Path, log: str | Path) -> list[dict[str, Any]]:
    """Append every record of `history` missing from `log` (by step, then time); the records
    appended. The log is rewritten to a temporary file and renamed into place."""
    records = read_log(log)
    logged = {record["sha256"] for record in records}
    new = []
    for path in sorted(Path(history).glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("sha256") not in logged:
            new.append(record)
    new.sort(key=lambda r: (r["step"] is None, r["step"] or 0, r["evaluated_at"]))
    if new:
        lines = [json.dumps(r, sort_keys=True) for r in records + new]
        text = "\n".join(lines) + "\n"
        atomic_write(log, lambda handle: handle.write(text.encode()))
    return new


@contextmanager
def history_lock(history: str | Path) -> Iterator[None]:
    """Hold `<history>/.lock` for one run; HistoryBusy when another run holds it."""
    folder = Path(history)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HistoryBusy(f"another re-evaluation holds {folder / '.lock'}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def schedule(params: ReevaluateParams) -> dict[str, Any]:
    """The schedule keyword of `flow.serve` / `flow.to_deployment`: interval or cron."""
    if params.cron is not None:
        return {"cron": params.cron}
    return {"interval": timedelta(minutes=float(params.interval_minutes or 0))}

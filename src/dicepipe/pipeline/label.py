"""The `label` stage: run the teacher over each sampled unit and keep the raw labels."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from dicepipe import __version__
from dicepipe.imageio import decode_image
from dicepipe.params import LabelParams
from dicepipe.pipeline.units import is_done, unit_manifest, write_unit
from dicepipe.records import LABEL_SCHEMA
from dicepipe.sources.common import ItemError
from dicepipe.storage import digest_of
from dicepipe.teachers.base import Label, Teacher, TeacherInput

STAGE = "label"


def plan(params: LabelParams, samples_dir: Path) -> list[Path]:
    """The sample unit files whose source this teacher labels."""
    return [
        path
        for path in sorted(samples_dir.glob("*.parquet"))
        if path.stem.split("-", 1)[0] in params.sources
    ]


def run_unit(
    sample_path: Path, teacher: Teacher, params: LabelParams, out_dir: Path
) -> dict[str, Any]:
    """Label every item of one sample unit into `<out_dir>/<unit>.parquet`."""
    unit = sample_path.stem
    fingerprint = digest_of(STAGE, unit, teacher.identity, params.sources, __version__)
    if not is_done(out_dir, unit, fingerprint):
        table = pq.read_table(sample_path, columns=["key", "source", "source_id", "image"])
        rows, errors = [], []
        for batch in _batches(table.to_pylist(), params.batch_size):
            done, failed = label_batch(teacher, batch)
            rows.extend(label_row(label) for label in done)
            errors.extend(failed)
        write_unit(out_dir, unit, rows, LABEL_SCHEMA, errors, STAGE, fingerprint)
    return unit_manifest(out_dir, unit)


def _batches(items: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def label_batch(
    teacher: Teacher, records: Sequence[dict[str, Any]]
) -> tuple[list[Label], list[tuple[str, ItemError]]]:
    """Label a batch; if the batch fails, label item by item so one bad item costs only itself."""
    inputs = [
        TeacherInput(r["key"], r["source"], r["source_id"], decode_image(r["image"]).rgb)
        for r in records
    ]
    try:
        return teacher.label(inputs), []
    except Exception:  # noqa: BLE001 - isolate the failing item below
        pass
    done, failed = [], []
    for item in inputs:
        try:
            done.extend(teacher.label([item]))
        except ItemError as error:
            failed.append((item.key, error))
        except Exception as error:  # noqa: BLE001 - a teacher bug on one item is quarantined
            failed.append(
                (item.key, ItemError("teacher_error", f"{type(error).__name__}: {error}"))
            )
    return done, failed


def label_row(label: Label) -> dict[str, Any]:
    """A row of `records.LABEL_SCHEMA`: arrays as little-endian float16 bytes."""
    height, width = label.depth.shape
    normals = None if label.normals is None else np.asarray(label.normals, "<f2").tobytes()
    return {
        "key": label.key,
        "teacher": label.teacher,
        "width": width,
        "height": height,
        "focal_px": label.focal_px,
        "depth": np.asarray(label.depth, "<f2").tobytes(),
        "normals": normals,
    }


def decode_label_arrays(row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """(depth (H, W), normals (H, W, 3) or None) as float32 from a label row."""
    shape = (row["height"], row["width"])
    depth = np.frombuffer(row["depth"], "<f2").reshape(shape).astype(np.float32)
    if row["normals"] is None:
        return depth, None
    normals = np.frombuffer(row["normals"], "<f2").reshape((*shape, 3)).astype(np.float32)
    return depth, normals

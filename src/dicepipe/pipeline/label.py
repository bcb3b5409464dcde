"""The `label` stage: run the teacher over each sampled unit and keep the raw labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from dicepipe.codescope import stage_code_version
from dicepipe.params.label import LabelParams
from dicepipe.pipeline.units import is_done, unit_manifest, write_unit
from dicepipe.records import LABEL_SCHEMA
from dicepipe.storage import digest_of, sha256_file
from dicepipe.teachers import configure_torch
from dicepipe.teachers.base import Label, Teacher
from dicepipe.teachers.stream import StreamItem, label_stream

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
    """Label every item of one sample unit into `<out_dir>/<unit>.parquet`.

    Images are decoded by threads ahead of the teacher and labelled in batches; an item the
    teacher fails on is quarantined alone. A unit already labelled by the same teacher is skipped.
    torch is configured from the params first (`configure_torch`), so every runner's workers
    compute the same labels. The focal length comes from the sample row (EXIF read at sample
    time), since the image bytes may have been re-encoded without EXIF.
    """
    unit = sample_path.stem
    fingerprint = digest_of(
        STAGE, unit, teacher.identity, sha256_file(sample_path), stage_code_version(STAGE)
    )
    if not is_done(out_dir, unit, fingerprint):
        configure_torch(params)
        columns = ["key", "source", "source_id", "image"]
        if "focal_px" in pq.read_schema(sample_path).names:
            columns.append("focal_px")
        table = pq.read_table(sample_path, columns=columns)
        items = (
            StreamItem(r["key"], r["image"], r["source"], r["source_id"], r.get("focal_px"))
            for r in table.to_pylist()
        )
        rows, errors = [], []
        for result in label_stream(teacher, items, params.batch_size, params.num_workers):
            if result.label is not None:
                rows.append(label_row(result.label))
            else:
                errors.append((result.key, result.error))
        write_unit(out_dir, unit, rows, LABEL_SCHEMA, errors, STAGE, fingerprint)
    return unit_manifest(out_dir, unit)


def cache_counts(teacher: Teacher | None) -> dict[str, int | None]:
    """How many labels a (possibly nested) cached teacher computed and read from its cache in
    this process; None when no model teacher was used here (or no teacher at all)."""
    if teacher is None:
        return {"computed": None, "from_cache": None}
    cached = getattr(teacher, "_fallback", teacher)
    return {
        "computed": getattr(cached, "computed", None),
        "from_cache": getattr(cached, "hits", None),
    }


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

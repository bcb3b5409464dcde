"""The `label` stage: run the teacher over each sampled unit and keep the raw labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from dicepipe.codescope import stage_code_version
from dicepipe.params.label import LabelParams
from dicepipe.pipeline.units import (
    is_done,
    rows_in_key_order,
    streamed_parquet,
    unit_manifest,
    write_errors,
)
from dicepipe.records import LABEL_SCHEMA
from dicepipe.storage import Location, digest_of, listing, read_schema, sha256_file
from dicepipe.teachers import configure_torch
from dicepipe.teachers.base import Label, Teacher
from dicepipe.teachers.stream import StreamItem, label_stream
from dicepipe.weights import resolve_device

STAGE = "label"
# Label rows are big (fp16 depth + normals: ~6 MB at 1024 px): a row group every ~32 MiB keeps
# a unit's memory to a few groups, and encode reads one group at a time.
ROW_GROUP_BYTES = 32 * 1024 * 1024


def plan(params: LabelParams, samples_dir: Location) -> list[Location]:
    """The sample unit files whose source this teacher labels."""
    return [
        path
        for path in listing(samples_dir, "*.parquet")
        if path.stem.split("-", 1)[0] in params.sources
    ]


def run_unit(
    sample_path: Location, teacher: Teacher, params: LabelParams, out_dir: Location
) -> dict[str, Any]:
    """Label every item of one sample unit into `<out_dir>/<unit>.parquet`.

    Images are decoded by threads ahead of the teacher and labelled in batches; an item the
    teacher fails on is quarantined alone. Rows stream to the file in row groups of about
    ROW_GROUP_BYTES, written by a thread while the teacher labels the next batch, so a unit's
    memory does not grow with its item count (rows come in key order, as the file keeps
    them). A unit already labelled by the same teacher is skipped. torch is configured from
    the params first (`configure_torch`), so every runner's workers compute the same labels.
    The focal length comes from the sample row (EXIF read at sample time), since the image
    bytes may have been re-encoded without EXIF.
    """
    unit = sample_path.stem
    fingerprint = digest_of(
        STAGE, unit, teacher.identity, sha256_file(sample_path), stage_code_version(STAGE)
    )
    if not is_done(out_dir, unit, fingerprint):
        configure_torch(params)
        columns = ["key", "source", "source_id", "image"]
        if "focal_px" in read_schema(sample_path).names:
            columns.append("focal_px")
        items = (
            StreamItem(r["key"], r["image"], r["source"], r["source_id"], r.get("focal_px"))
            for r in rows_in_key_order(sample_path, columns, max(1, params.batch_size))
        )
        results = label_stream(
            teacher, items, params.batch_size, params.num_workers, pin_memory=_pins(params)
        )
        errors = []
        with streamed_parquet(
            out_dir / f"{unit}.parquet",
            LABEL_SCHEMA,
            fingerprint,
            group_bytes=ROW_GROUP_BYTES,
            row_bytes=label_row_bytes,
        ) as add:
            for result in results:
                if result.label is not None:
                    add(label_row(result.label))
                else:
                    errors.append((result.key, result.error))
            write_errors(out_dir, unit, errors, STAGE, fingerprint)  # before the rows' rename
    return unit_manifest(out_dir, unit)


def _pins(params: LabelParams) -> bool:
    """Whether decoded images go to page-locked memory: only when the teacher runs on CUDA."""
    import torch

    return torch.cuda.is_available() and resolve_device(params.device).type == "cuda"


def label_row_bytes(row: dict[str, Any]) -> int:
    """Stored size of a label row, about: its arrays plus a little for the rest."""
    return len(row["depth"]) + len(row["normals"] or b"") + 256


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

"""The `sample` stage: pick items from every source and materialise them per input shard.

Per unit `<out>/<unit>.parquet` holds the rows (streamed in batches, so memory does not grow
with the unit), `<out>/errors/<unit>.parquet` the quarantined items and
`<out>/notes/<unit>.parquet` the annotations dropped from rows (key, annotation_id, reason).
All three carry the unit's fingerprint; the rows file is renamed into place last, so its
presence with the right fingerprint marks the unit done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dicepipe.codescope import stage_code_version
from dicepipe.params.sample import SampleParams
from dicepipe.pipeline.units import error_path, is_done, unit_manifest
from dicepipe.records import QUARANTINE_SCHEMA, SAMPLE_SCHEMA, quarantine_row
from dicepipe.sources import coco, openimages, sa1b
from dicepipe.sources.common import Outcome, Unit
from dicepipe.sources.synthetic import scenes
from dicepipe.storage import (
    FINGERPRINT_KEY,
    Location,
    atomic_path,
    digest_of,
    read_fingerprint,
    read_table,
    remove_temporaries,
    write_parquet,
)

STAGE = "sample"
NOTES_DIR = "notes"
LISTINGS_DIR = "listings"  # tar listings and annotation indexes, keyed by input identity
NOTES_SCHEMA = pa.schema(
    [("key", pa.string()), ("annotation_id", pa.int64()), ("reason", pa.string())]
)
SOURCES: dict[str, ModuleType] = {m.SOURCE: m for m in (openimages, sa1b, coco, scenes)}
# Encoded images neither shrink under zstd nor repeat (dictionary) nor have useful min/max
# statistics: writing them plainly saves most of the CPU a row costs to write.
WRITER_OPTIONS = {
    "compression": {name: "zstd" for name in SAMPLE_SCHEMA.names} | {"image": "none"},
    "use_dictionary": ["source", "unit"],
    "write_statistics": ["key", "source", "source_id", "unit", "width", "height"],
}
BATCH_BYTES = 8 << 20  # image bytes per row group: bounds memory whatever the unit's size


def plan(params: SampleParams, out_dir: Location | None = None) -> list[Unit]:
    """Every work unit of the sample, in a fixed order: OpenImages blocks, SA-1B tars, the
    COCO-format datasets in the order listed, rendered scenes. With `out_dir`, the SA-1B tar
    listings and COCO annotation indexes are kept in `<out_dir>/listings`, so later plans
    read none of those inputs again."""
    listing_dir = out_dir / LISTINGS_DIR if out_dir is not None else None
    coco_units = [
        unit
        for dataset in params.coco
        for unit in coco.plan_units(dataset, params.seed, index_dir=listing_dir)
    ]
    return (
        openimages.plan_units(params.openimages, params.seed)
        + sa1b.plan_units(params.sa1b, params.seed, listing_dir=listing_dir)
        + coco_units
        + scenes.plan_units(params.synthetic, params.seed)
    )


def unit_fingerprint(unit: Unit, params: SampleParams) -> str:
    """What a unit's output depends on: the unit (input shard, selected items, role, and for
    COCO-format datasets the annotations file's sha256, not where its index lies), the
    limits, the seed, the source's read settings and the code version."""
    module = SOURCES[unit.module]
    unit = replace(unit, index="")  # where an index lies is no content: its file's sha256 is
    section = getattr(params, module.SOURCE) if module.READ_FIELDS else None
    settings = {name: getattr(section, name) for name in module.READ_FIELDS}
    return digest_of(
        STAGE, unit, params.max_pixels, params.seed, settings, stage_code_version(STAGE)
    )


def read_unit(unit: Unit, params: SampleParams) -> Iterator[Outcome]:
    """Stream the outcome of every selected item of one unit."""
    return SOURCES[unit.module].iter_unit(unit, params)


def notes_path(out_dir: Location, unit: str) -> Location:
    """Where a unit's dropped-annotation notes live."""
    return out_dir / NOTES_DIR / f"{unit}.parquet"


def run_unit(unit: Unit, params: SampleParams, out_dir: Location) -> dict[str, Any]:
    """Read one unit's selected items into `<out_dir>/<unit>.parquet`, quarantining failures.

    A unit already written with the same fingerprint is skipped, so a re-run after a kill
    redoes only the units that are missing or stale. Returns a small manifest.
    """
    fingerprint = unit_fingerprint(unit, params)
    done = is_done(out_dir, unit.name, fingerprint)
    if not done or read_fingerprint(notes_path(out_dir, unit.name)) != fingerprint:
        remove_temporaries(out_dir, f"{unit.name}.parquet")  # of a killed write
        write_outcomes(out_dir, unit.name, read_unit(unit, params), fingerprint)
    return {
        **unit_manifest(out_dir, unit.name),
        "source": unit.source,
        "items": len(unit.items),
        "dropped_annotations": note_counts(out_dir, unit.name),
    }


def write_outcomes(
    out_dir: Location, unit: str, outcomes: Iterable[Outcome], fingerprint: str
) -> None:
    """Stream rows into the unit's Parquet in row groups of about BATCH_BYTES, then write the
    quarantine and notes tables, then rename the rows file into place (all atomic)."""
    errors: list[dict[str, str]] = []
    notes: list[dict[str, Any]] = []
    schema = SAMPLE_SCHEMA.with_metadata({FINGERPRINT_KEY: fingerprint.encode()})

    def write(sink: pa.NativeFile) -> None:
        with pq.ParquetWriter(sink, schema, **WRITER_OPTIONS) as writer:
            for batch in _row_batches(outcomes, errors, notes):
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        errors.sort(key=lambda r: r["key"])
        notes.sort(key=lambda r: (r["key"], r["annotation_id"], r["reason"]))
        quarantine = pa.Table.from_pylist(errors, schema=QUARANTINE_SCHEMA)
        write_parquet(error_path(out_dir, unit), quarantine, fingerprint)
        write_parquet(
            notes_path(out_dir, unit), pa.Table.from_pylist(notes, schema=NOTES_SCHEMA), fingerprint
        )

    with atomic_path(out_dir / f"{unit}.parquet") as tmp, pa.OSFile(str(tmp), "wb") as sink:
        write(sink)


def _row_batches(
    outcomes: Iterable[Outcome], errors: list[dict[str, str]], notes: list[dict[str, Any]]
) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for outcome in outcomes:
        if outcome.error is not None:
            error = outcome.error
            errors.append(quarantine_row(outcome.key, STAGE, error.reason, error.message))
            continue
        batch.append(outcome.row)
        notes.extend(outcome.notes)
        size += len(outcome.row["image"])
        if size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def note_counts(out_dir: Location, unit: str) -> dict[str, int]:
    """Dropped annotations of a finished unit, counted by reason."""
    path = notes_path(out_dir, unit)
    if not path.exists():
        return {}
    reasons = read_table(path, columns=["reason"])["reason"].to_pylist()
    return dict(sorted(Counter(reasons).items()))

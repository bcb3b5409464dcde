"""Per-unit outputs shared by every stage: atomic tables, fingerprints, quarantine files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dicepipe.records import QUARANTINE_SCHEMA, ItemError, quarantine_row
from dicepipe.storage import read_fingerprint, remove_temporaries, write_parquet

ERRORS_DIR = "errors"
SIDE_DIRS = (ERRORS_DIR, "notes")  # per-unit side tables kept beside the unit files


def error_path(out_dir: Path, unit: str) -> Path:
    """Where a unit's quarantine rows live."""
    return out_dir / ERRORS_DIR / f"{unit}.parquet"


def is_done(out_dir: Path, unit: str, fingerprint: str) -> bool:
    """True when a unit's output and quarantine files exist with the same fingerprint."""
    return read_fingerprint(out_dir / f"{unit}.parquet") == fingerprint and (
        read_fingerprint(error_path(out_dir, unit)) == fingerprint
    )


def write_unit(
    out_dir: Path,
    unit: str,
    rows: Sequence[dict[str, Any]],
    schema: pa.Schema,
    errors: Iterable[tuple[str, ItemError]],
    stage: str,
    fingerprint: str,
) -> dict[str, Any]:
    """Write the quarantine file, then the output (the output's presence marks the unit done)."""
    error_rows = sorted(
        (quarantine_row(key, stage, e.reason, e.message) for key, e in errors),
        key=lambda r: r["key"],
    )
    quarantine = pa.Table.from_pylist(error_rows, schema=QUARANTINE_SCHEMA)
    write_parquet(error_path(out_dir, unit), quarantine, fingerprint)
    ordered = sorted(rows, key=lambda r: r["key"])
    write_parquet(
        out_dir / f"{unit}.parquet", pa.Table.from_pylist(ordered, schema=schema), fingerprint
    )
    return unit_manifest(out_dir, unit)


def unit_manifest(out_dir: Path, unit: str) -> dict[str, Any]:
    """Small summary of a finished unit: rows and quarantined counts (never arrays)."""
    return {
        "unit": unit,
        "rows": pq.read_metadata(out_dir / f"{unit}.parquet").num_rows,
        "quarantined": pq.read_metadata(error_path(out_dir, unit)).num_rows,
    }


def remove_stale(out_dir: Path, units: Iterable[str]) -> list[str]:
    """Delete unit files of an earlier plan that this plan no longer has, and the temporary
    files a killed run left anywhere under `out_dir`; the unit files' names. Call it once
    every unit is written (no write is in flight then)."""
    remove_temporaries(out_dir)
    keep = {f"{u}.parquet" for u in units}
    stale = []
    for folder in (out_dir, *(out_dir / side for side in SIDE_DIRS)):
        for path in sorted(folder.glob("*.parquet")) if folder.exists() else []:
            if path.name not in keep:
                path.unlink()
                stale.append(str(path.relative_to(out_dir)))
    return stale


def file_keys(path: Path) -> list[str]:
    """The `key` column of one Parquet file (empty when the file does not exist)."""
    return pq.read_table(path, columns=["key"])["key"].to_pylist() if path.exists() else []


def read_quarantine(out_dir: Path) -> pa.Table:
    """All quarantine rows of a stage folder, sorted by key."""
    paths = sorted((out_dir / ERRORS_DIR).glob("*.parquet"))
    if not paths:
        return QUARANTINE_SCHEMA.empty_table()
    return pa.concat_tables(pq.read_table(p) for p in paths).sort_by("key")

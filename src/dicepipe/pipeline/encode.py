"""The `encode` stage: sampled items + raw labels -> RGB targets -> Parquet training shards."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dicepipe import __version__
from dicepipe.params import EncodeParams
from dicepipe.pipeline.examples import examples_for_item
from dicepipe.pipeline.label import decode_label_arrays
from dicepipe.pipeline.units import error_path
from dicepipe.records import QUARANTINE_SCHEMA, quarantine_row
from dicepipe.shards import shard_entry, write_shard
from dicepipe.sources.common import ItemError
from dicepipe.storage import digest_of, read_fingerprint, sha256_file, write_parquet

STAGE = "encode"


def plan(samples_dir: Path) -> list[Path]:
    """Every sample unit file; each becomes one shard of the same name."""
    return sorted(samples_dir.glob("*.parquet"))


def run_unit(
    sample_path: Path, labels_dir: Path, params: EncodeParams, shards_dir: Path, work_dir: Path
) -> dict[str, Any]:
    """Encode one sample unit into `<shards_dir>/<unit>.parquet` (+ quarantine rows).

    The fingerprint covers the inputs' content, the encode params and the code version, so an
    unchanged unit is not rewritten and its bytes stay identical.
    """
    unit = sample_path.stem
    label_path = labels_dir / f"{unit}.parquet"
    inputs = [sha256_file(sample_path)]
    if label_path.exists():
        inputs.append(sha256_file(label_path))
    fingerprint = digest_of(STAGE, unit, inputs, asdict(params), __version__)
    shard_path = shards_dir / f"{unit}.parquet"
    errors_file = error_path(work_dir, unit)
    if read_fingerprint(errors_file) != fingerprint or not shard_path.exists():
        rows, errors = _encode_unit(sample_path, label_path, params)
        error_rows = sorted(errors, key=lambda r: r["key"])
        write_parquet(
            errors_file, pa.Table.from_pylist(error_rows, schema=QUARANTINE_SCHEMA), fingerprint
        )
        entry = write_shard(shard_path, rows)
    else:
        entry = shard_entry(shard_path)
    entry["quarantined"] = pq.read_metadata(errors_file).num_rows
    return entry


def _encode_unit(
    sample_path: Path, label_path: Path, params: EncodeParams
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    labels = _read_labels(label_path)
    rows, errors = [], []
    for item in pq.read_table(sample_path).to_pylist():
        label = labels.get(item["key"])
        depth, normals = decode_label_arrays(label) if label else (None, None)
        meta = {"teacher": label["teacher"], "focal_px": label["focal_px"]} if label else {}
        try:
            rows.extend(examples_for_item(item, depth, normals, meta, params))
        except ItemError as error:
            errors.append(quarantine_row(item["key"], STAGE, error.reason, error.message))
    return rows, errors


def _read_labels(label_path: Path) -> dict[str, dict[str, Any]]:
    if not label_path.exists():
        return {}
    return {row["key"]: row for row in pq.read_table(label_path).to_pylist()}

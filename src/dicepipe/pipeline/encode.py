"""The `encode` stage: sampled items + raw labels (and composites) -> Parquet training shards.

Per unit: the shard parts `<shards>/<unit>-NNN.parquet` (none when every item of the unit
was quarantined: no shard is ever empty), then `<work>/errors/<unit>.parquet`, whose
fingerprint `<fingerprint>:<parts>` marks the unit done and says how many parts it has.
Any failure of one item quarantines that item, never the unit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from dicepipe.codescope import stage_code_version
from dicepipe.params.encode import EncodeParams
from dicepipe.pipeline.examples import composite_example, examples_for_item
from dicepipe.pipeline.units import KeyedRows, error_path, file_keys, rows_in_key_order
from dicepipe.records import (
    QUARANTINE_SCHEMA,
    ItemError,
    decode_label_arrays,
    guard,
    quarantine_row,
)
from dicepipe.shards.card import params_digest
from dicepipe.shards.manifest import shard_entry
from dicepipe.shards.writer import UnitShardWriter, finished_unit_shards, unit_shard_paths
from dicepipe.storage import (
    Location,
    digest_of,
    listing,
    read_fingerprint,
    read_metadata,
    sha256_file,
    write_parquet,
)

STAGE = "encode"
AddRow = Callable[[dict[str, Any]], None]
Build = Callable[[AddRow], list[dict[str, str]]]  # hands rows to `add`; returns quarantine rows


def plan(*input_dirs: Location) -> list[Location]:
    """Every unit file of the input folders (samples, composites); each becomes one shard."""
    return sorted((path for folder in input_dirs for path in listing(folder, "*.parquet")), key=str)


def run_unit(
    unit_path: Location,
    labels_dir: Location,
    params: EncodeParams,
    shards_dir: Location,
    work_dir: Location,
) -> dict[str, Any]:
    """Encode one sample or composite unit into `<shards_dir>/<unit>-NNN.parquet` parts.

    The fingerprint covers the inputs' content, the encode params that change the output (not
    the runner) and the code version: an unchanged unit is not rewritten, and re-encoding the
    same inputs gives the same bytes whichever runner runs it.
    """
    unit = unit_path.stem
    label_path = labels_dir / f"{unit}.parquet"
    label_files = (label_path, error_path(labels_dir, unit))
    inputs = [unit_path, *(path for path in label_files if path.exists())]
    if unit.startswith("composite-"):
        return _write(
            unit, inputs, params, shards_dir, work_dir, lambda add: _composites(unit_path, add)
        )
    build = lambda add: _items(unit_path, label_path, params, add)  # noqa: E731
    return _write(unit, inputs, params, shards_dir, work_dir, build)


def _write(
    unit: str,
    inputs: list[Location],
    params: EncodeParams,
    shards_dir: Location,
    work_dir: Location,
    build: Build,
) -> dict[str, Any]:
    fingerprint = digest_of(
        STAGE,
        unit,
        [sha256_file(p) for p in inputs],
        params_digest(params),
        stage_code_version(STAGE),
    )
    errors_file = error_path(work_dir, unit)
    finished = _finished(shards_dir, unit, fingerprint, read_fingerprint(errors_file))
    if finished is not None:
        entries = [shard_entry(path) for path in finished]
    else:
        writer = UnitShardWriter(
            shards_dir,
            unit,
            fingerprint,
            shard_bytes=params.shard_bytes,
            row_group_bytes=params.row_group_bytes,
        )
        try:
            errors = build(writer.add)
        except BaseException:
            writer.discard()
            raise
        entries = writer.close()
        table = pa.Table.from_pylist(
            sorted(errors, key=lambda r: r["key"]), schema=QUARANTINE_SCHEMA
        )
        write_parquet(errors_file, table, f"{fingerprint}:{len(entries)}")  # marks it done
    return {
        "unit": unit,
        "shards": entries,
        "quarantined": read_metadata(errors_file).num_rows,
    }


def _finished(shards_dir: Location, unit: str, fingerprint: str, marker: str | None) -> list | None:
    """The unit's current shard parts when its done-marker and the parts on disk agree (a
    unit whose items were all quarantined is done with no part), else None."""
    if marker is None or marker.rsplit(":", 1)[0] != fingerprint:
        return None
    parts = marker.rsplit(":", 1)[1]
    if parts == "0":
        return [] if not unit_shard_paths(shards_dir, unit) else None
    finished = finished_unit_shards(shards_dir, unit, fingerprint)
    return finished if finished is not None and str(len(finished)) == parts else None


def _items(sample_path: Location, label_path: Location, params: EncodeParams, add: AddRow) -> list:
    """Rows of every item with a target, handed to `add` item by item in key order; the
    quarantine rows. An item with no target is quarantined here, unless the label stage
    already quarantined it (it is accounted for there, not twice). Items stream from the
    sample file and labels are looked up by key one label row group at a time, so memory
    does not grow with the unit."""
    labels = KeyedRows(label_path)
    label_errors = error_path(label_path.parent, label_path.stem)
    failed_labels = set(file_keys(label_errors))
    errors = []
    for item in rows_in_key_order(sample_path):
        result = guard(_item_examples, item, labels.get(item["key"]), params)
        if not isinstance(result, ItemError):
            for row in result:
                add(row)
        elif not (result.reason == "no_target" and item["key"] in failed_labels):
            errors.append(quarantine_row(item["key"], STAGE, result.reason, result.message))
    return errors


def _item_examples(
    item: dict[str, Any], label: dict[str, Any] | None, params: EncodeParams
) -> list[dict[str, Any]]:
    depth, normals = _label_arrays(label, item)
    meta = {"teacher": label["teacher"], "focal_px": label["focal_px"]} if label else {}
    return examples_for_item(item, depth, normals, meta, params)


def _label_arrays(label: dict[str, Any] | None, item: dict[str, Any]) -> tuple[Any, Any]:
    """(depth, normals) of an item's label row, checked to be of the image's size."""
    if label is None:
        return None, None
    if (label["width"], label["height"]) != (item["width"], item["height"]):
        message = f"label is {label['width']}x{label['height']}"
        raise ItemError("label_size_mismatch", f"{message}, image {item['width']}x{item['height']}")
    try:
        return decode_label_arrays(label)
    except ValueError as error:
        raise ItemError("bad_label", f"label arrays unreadable: {error}") from None


def _composites(composite_path: Location, add: AddRow) -> list[dict[str, str]]:
    errors = []
    for row in rows_in_key_order(composite_path):
        result = guard(composite_example, row)
        if isinstance(result, ItemError):
            errors.append(quarantine_row(row["key"], STAGE, result.reason, result.message))
        else:
            add(result)
    return errors

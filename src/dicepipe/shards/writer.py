"""Training shard files: Parquet with HF `datasets` image features, split by size per unit."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from dicepipe.shards.manifest import shard_entry
from dicepipe.storage import read_fingerprint, write_parquet

IMAGE_COLUMNS = ("image", "target")
ROW_GROUP_BYTES = 100 * 1024 * 1024


@cache
def shard_schema() -> pa.Schema:
    """The shard schema, carrying HF feature metadata so `image`/`target` decode as images."""
    import datasets

    value, image = datasets.Value, datasets.Image()
    features = datasets.Features(
        {
            "key": value("string"),
            "task": value("string"),
            "prompt": value("string"),
            "image": image,
            "target": image,
            "points": datasets.List(datasets.List(value("float32"))),
            "source": value("string"),
            "source_id": value("string"),
            "width": value("int32"),
            "height": value("int32"),
            "teacher": value("string"),
            "meta": value("string"),
        }
    )
    return features.arrow_schema


def image_cell(data: bytes) -> dict[str, Any]:
    """An HF image cell: encoded bytes, no path."""
    return {"bytes": data, "path": None}


def _sort_key(row: dict[str, Any]) -> tuple[str, str]:
    return row["key"], row["task"]


def _row_bytes(row: dict[str, Any]) -> int:
    """Approximate stored size of a row: its encoded images plus a little for the rest."""
    return len(row["image"]["bytes"]) + len(row["target"]["bytes"]) + 256


def split_by_size(rows: Sequence[dict[str, Any]], target_bytes: int) -> list[list[dict]]:
    """Consecutive runs of rows of at most `target_bytes` each (at least one row per part)."""
    parts: list[list[dict]] = [[]]
    size = 0
    for row in rows:
        row_bytes = _row_bytes(row)
        if parts[-1] and size + row_bytes > target_bytes:
            parts.append([])
            size = 0
        parts[-1].append(row)
        size += row_bytes
    return parts


def write_shard(
    path: str | Path,
    rows: Sequence[dict[str, Any]],
    *,
    row_group_bytes: int = ROW_GROUP_BYTES,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Write rows (sorted by key, task for byte-stable output) as one shard; its manifest entry.

    Image bytes are stored as they are (already PNG/JPEG): compressing them again costs time
    and saves nothing, so only the other columns are zstd-compressed. Row groups hold about
    `row_group_bytes` each.
    """
    if not rows:
        raise ValueError(f"{path}: refusing to write an empty shard (readers fail on them)")
    ordered = sorted(rows, key=_sort_key)
    table = pa.Table.from_pylist(ordered, schema=shard_schema())
    compression = {name: "zstd" for name in table.column_names}
    compression.update({f"{name}.bytes": "none" for name in IMAGE_COLUMNS})
    compression.update({f"{name}.path": "none" for name in IMAGE_COLUMNS})
    mean_row = max(1, sum(map(_row_bytes, ordered)) // max(1, len(ordered)))
    write_parquet(
        path,
        table,
        fingerprint,
        compression=compression,
        use_dictionary=["key", "task", "prompt", "source", "teacher"],
        row_group_size=max(1, row_group_bytes // mean_row),
    )
    return shard_entry(path)


def unit_shard_paths(shards_dir: Path, unit: str) -> list[Path]:
    """The shard parts of one unit, in order (`<unit>-000.parquet`, `<unit>-001.parquet`...)."""
    return sorted(shards_dir.glob(f"{unit}-[0-9][0-9][0-9].parquet"))


def write_unit_shards(
    shards_dir: Path,
    unit: str,
    rows: Sequence[dict[str, Any]],
    fingerprint: str,
    *,
    shard_bytes: int,
    row_group_bytes: int = ROW_GROUP_BYTES,
) -> list[dict[str, Any]]:
    """Write one unit's rows as shards of about `shard_bytes`; their manifest entries.

    Each part records `<fingerprint>:<k>/<n>`, so `finished_unit_shards` can tell a complete,
    current set of parts from a partial or stale one. A unit without rows has no part (no
    shard is ever empty: `datasets` cannot read a 0-row Parquet file); its old parts go.
    """
    parts = split_by_size(sorted(rows, key=_sort_key), shard_bytes) if rows else []
    entries = []
    for k, part in enumerate(parts):
        path = shards_dir / f"{unit}-{k:03d}.parquet"
        part_print = f"{fingerprint}:{k}/{len(parts)}"
        entries.append(
            write_shard(path, part, row_group_bytes=row_group_bytes, fingerprint=part_print)
        )
    for extra in unit_shard_paths(shards_dir, unit)[len(parts) :]:
        extra.unlink()
    return entries


def finished_unit_shards(shards_dir: Path, unit: str, fingerprint: str) -> list[Path] | None:
    """The unit's shard parts when all exist with this fingerprint, else None."""
    paths = unit_shard_paths(shards_dir, unit)
    expected = [f"{fingerprint}:{k}/{len(paths)}" for k in range(len(paths))]
    if paths and [read_fingerprint(p) for p in paths] == expected:
        return paths
    return None

"""Training shard files: Parquet with HF `datasets` image features, split by size per unit."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dicepipe.shards.manifest import shard_entry
from dicepipe.storage import (
    FINGERPRINT_KEY,
    Location,
    atomic_path,
    is_remote,
    listing,
    location,
    read_fingerprint,
    write_parquet,
)

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


def _writer_options(row_group_size: int) -> dict[str, Any]:
    """Parquet options of a shard: images stored as they are, the rest zstd."""
    compression = {name: "zstd" for name in shard_schema().names}
    compression.update({f"{name}.bytes": "none" for name in IMAGE_COLUMNS})
    compression.update({f"{name}.path": "none" for name in IMAGE_COLUMNS})
    return {
        "compression": compression,
        "use_dictionary": ["key", "task", "prompt", "source", "teacher"],
        "row_group_size": row_group_size,
    }


def _group_rows(rows: Sequence[dict[str, Any]], row_group_bytes: int) -> int:
    """Rows per row group of a shard: `row_group_bytes` over its mean row size."""
    mean_row = max(1, sum(map(_row_bytes, rows)) // max(1, len(rows)))
    return max(1, row_group_bytes // mean_row)


def write_shard(
    path: str | Location,
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
    write_parquet(
        path, table, fingerprint, **_writer_options(_group_rows(ordered, row_group_bytes))
    )
    return shard_entry(path)


def unit_shard_paths(shards_dir: Location, unit: str) -> list[Location]:
    """The shard parts of one unit, in order (`<unit>-000.parquet`, `<unit>-001.parquet`...)."""
    return listing(shards_dir, f"{unit}-[0-9][0-9][0-9].parquet")


def write_unit_shards(
    shards_dir: Location,
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


def finished_unit_shards(
    shards_dir: Location, unit: str, fingerprint: str
) -> list[Location] | None:
    """The unit's shard parts when all exist with this fingerprint, else None."""
    paths = unit_shard_paths(shards_dir, unit)
    expected = [f"{fingerprint}:{k}/{len(paths)}" for k in range(len(paths))]
    if paths and [read_fingerprint(p) for p in paths] == expected:
        return paths
    return None


class UnitShardWriter:
    """`write_unit_shards` for rows that arrive one by one: the same files, byte for byte, in
    bounded memory.

    Rows must come in key order (the unit files' order); the rows of one key are sorted by
    task here, so the order is `write_unit_shards`'s. A part's row-group size depends on its
    mean row size and every part's fingerprint on the number of parts, both known only at the
    end: rows go to a temporary Arrow stream beside the shards first (the parts' boundaries
    are cut as they come), and `close` writes each part from it a row group at a time. Memory
    holds one key's rows, one spill batch and one row group; disk, the unit's rows once more.
    """

    SPILL_ROWS = 16  # rows per record batch of the spill file

    def __init__(
        self,
        shards_dir: Location,
        unit: str,
        fingerprint: str,
        *,
        shard_bytes: int,
        row_group_bytes: int = ROW_GROUP_BYTES,
    ) -> None:
        self.shards_dir, self.unit, self.fingerprint = location(shards_dir), unit, fingerprint
        self.shard_bytes, self.row_group_bytes = shard_bytes, row_group_bytes
        scratch = None  # the spill lies beside local shards, in the temporary folder otherwise
        if not is_remote(self.shards_dir):
            self.shards_dir.mkdir(parents=True, exist_ok=True)
            scratch = self.shards_dir
        fd, name = tempfile.mkstemp(prefix=f".{unit}-spill.", suffix=".tmp", dir=scratch)
        os.close(fd)
        self.spill = Path(name)
        self._sink = pa.OSFile(name, "wb")
        self._stream = pa.ipc.new_stream(self._sink, shard_schema())
        self.parts: list[tuple[int, int]] = []  # (rows, bytes) of each part
        self._key: str | None = None
        self._same_key: list[dict[str, Any]] = []
        self._batch: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        """Append one row (keys must not decrease)."""
        if self._key is not None and row["key"] < self._key:
            raise ValueError(f"rows out of key order: {row['key']!r} after {self._key!r}")
        if row["key"] != self._key:
            self._flush_key()
            self._key = row["key"]
        self._same_key.append(row)

    def _flush_key(self) -> None:
        for row in sorted(self._same_key, key=_sort_key):
            size = _row_bytes(row)
            rows, total = self.parts[-1] if self.parts else (0, 0)
            if not self.parts or (rows and total + size > self.shard_bytes):
                self.parts.append((0, 0))
                rows, total = 0, 0
            self.parts[-1] = (rows + 1, total + size)
            self._batch.append(row)
            if len(self._batch) >= self.SPILL_ROWS:
                self._spill_batch()
        self._same_key = []

    def _spill_batch(self) -> None:
        if self._batch:
            self._stream.write_table(pa.Table.from_pylist(self._batch, schema=shard_schema()))
            self._batch = []

    def close(self) -> list[dict[str, Any]]:
        """Write the parts; their manifest entries. Old parts beyond the new count go."""
        try:
            self._flush_key()
            self._spill_batch()
            self._stream.close()
            self._sink.close()
            entries = self._write_parts()
        finally:
            self.discard()
        for extra in unit_shard_paths(self.shards_dir, self.unit)[len(entries) :]:
            extra.unlink()
        return entries

    def discard(self) -> None:
        """Drop the spill file (close does it; call it when the unit fails midway)."""
        if not self._sink.closed:
            self._stream.close()
            self._sink.close()
        self.spill.unlink(missing_ok=True)

    def _write_parts(self) -> list[dict[str, Any]]:
        entries = []
        with pa.OSFile(str(self.spill), "rb") as source:
            cursor = _RowCursor(pa.ipc.open_stream(source))
            for k, (count, size) in enumerate(self.parts):
                path = self.shards_dir / f"{self.unit}-{k:03d}.parquet"
                group = max(1, self.row_group_bytes // max(1, size // count))
                fingerprint = f"{self.fingerprint}:{k}/{len(self.parts)}"
                _write_part(path, cursor, count, group, fingerprint)
                entries.append(shard_entry(path))
        return entries


class _RowCursor:
    """Reads the spill's rows in order, any number at a time."""

    def __init__(self, reader: pa.ipc.RecordBatchStreamReader) -> None:
        self.reader, self.pending = reader, pa.Table.from_batches([], shard_schema())

    def take(self, count: int) -> pa.Table:
        """The next `count` rows as one table (one chunk per column)."""
        parts, have = [self.pending], self.pending.num_rows
        while have < count:
            batch = self.reader.read_next_batch()
            parts.append(pa.Table.from_batches([batch]))
            have += batch.num_rows
        table = pa.concat_tables(parts)
        self.pending = table.slice(count)
        return table.slice(0, count).combine_chunks()


def _write_part(
    path: Location, cursor: _RowCursor, count: int, group: int, fingerprint: str
) -> None:
    """Write the next `count` rows of the spill as one shard, `group` rows per row group (one
    contiguous chunk per column each, as `pq.write_table` slices its one-chunk table)."""
    schema = shard_schema()
    schema = schema.with_metadata(
        {**(schema.metadata or {}), FINGERPRINT_KEY: fingerprint.encode()}
    )
    options = _writer_options(group)
    del options["row_group_size"]
    with atomic_path(path) as tmp, pq.ParquetWriter(str(tmp), schema, **options) as writer:
        for start in range(0, count, group):
            rows = cursor.take(min(group, count - start)).replace_schema_metadata(schema.metadata)
            writer.write_table(rows, row_group_size=group)

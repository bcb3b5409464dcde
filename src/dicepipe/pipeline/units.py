"""Per-unit outputs shared by every stage: atomic tables, fingerprints, quarantine files."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dicepipe.records import QUARANTINE_SCHEMA, ItemError, quarantine_row
from dicepipe.storage import (
    FINGERPRINT_KEY,
    Location,
    atomic_path,
    listing,
    parquet_file,
    read_fingerprint,
    read_metadata,
    read_table,
    remove_temporaries,
    write_parquet,
)

ERRORS_DIR = "errors"
SIDE_DIRS = (ERRORS_DIR, "notes")  # per-unit side tables kept beside the unit files


def error_path(out_dir: Location, unit: str) -> Location:
    """Where a unit's quarantine rows live."""
    return out_dir / ERRORS_DIR / f"{unit}.parquet"


def is_done(out_dir: Location, unit: str, fingerprint: str) -> bool:
    """True when a unit's output and quarantine files exist with the same fingerprint."""
    return read_fingerprint(out_dir / f"{unit}.parquet") == fingerprint and (
        read_fingerprint(error_path(out_dir, unit)) == fingerprint
    )


def write_unit(
    out_dir: Location,
    unit: str,
    rows: Sequence[dict[str, Any]],
    schema: pa.Schema,
    errors: Iterable[tuple[str, ItemError]],
    stage: str,
    fingerprint: str,
) -> dict[str, Any]:
    """Write the quarantine file, then the output (the output's presence marks the unit done)."""
    write_errors(out_dir, unit, errors, stage, fingerprint)
    ordered = sorted(rows, key=lambda r: r["key"])
    write_parquet(
        out_dir / f"{unit}.parquet", pa.Table.from_pylist(ordered, schema=schema), fingerprint
    )
    return unit_manifest(out_dir, unit)


def write_errors(
    out_dir: Location,
    unit: str,
    errors: Iterable[tuple[str, ItemError]],
    stage: str,
    fingerprint: str,
) -> None:
    """Write a unit's quarantine file (rows sorted by key)."""
    error_rows = sorted(
        (quarantine_row(key, stage, e.reason, e.message) for key, e in errors),
        key=lambda r: r["key"],
    )
    quarantine = pa.Table.from_pylist(error_rows, schema=QUARANTINE_SCHEMA)
    write_parquet(error_path(out_dir, unit), quarantine, fingerprint)


def with_fingerprint(schema: pa.Schema, fingerprint: str | None) -> pa.Schema:
    """`schema` with the fingerprint in its metadata, as `storage.write_parquet` stores it."""
    if fingerprint is None:
        return schema
    return schema.with_metadata({**(schema.metadata or {}), FINGERPRINT_KEY: fingerprint.encode()})


@contextmanager
def streamed_parquet(
    path: Location,
    schema: pa.Schema,
    fingerprint: str | None,
    *,
    group_bytes: int,
    row_bytes: Callable[[dict[str, Any]], int],
    **options: Any,
) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Write rows to one Parquet file as they come: yields `add(row)`.

    A row group is cut as soon as its rows reach `group_bytes` (by `row_bytes`), so memory
    holds a few row groups whatever the file's length. A writer thread converts and writes
    each group while the caller computes the next (the queue between them holds one group, so
    a slow disk holds the caller back rather than letting rows pile up). The file is written
    under a temporary name and renamed into place when the block ends without an error; a file
    without rows holds one empty row group, as `pq.write_table` writes an empty table.
    """
    schema = with_fingerprint(schema, fingerprint)
    options.setdefault("compression", "zstd")
    with atomic_path(path) as tmp:
        writer = _GroupWriter(pq.ParquetWriter(str(tmp), schema, **options), schema)
        buffer: list[dict[str, Any]] = []
        size = 0

        def add(row: dict[str, Any]) -> None:
            nonlocal size
            buffer.append(row)
            size += row_bytes(row)
            if size >= group_bytes:
                writer.put(buffer.copy())
                buffer.clear()
                size = 0

        try:
            yield add
            if buffer or not writer.groups:
                writer.put(list(buffer))
        finally:
            writer.close()


class _GroupWriter:
    """A thread writing row groups handed over through a one-slot queue."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema) -> None:
        self.writer, self.schema, self.groups = writer, schema, 0
        self.failure: BaseException | None = None
        self.queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._drain, name="parquet-writer", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while (rows := self.queue.get()) is not None:
            if self.failure is None:
                try:
                    table = pa.Table.from_pylist(rows, schema=self.schema)
                    self.writer.write_table(table, row_group_size=max(1, len(rows)))
                except BaseException as error:  # handed to the caller by put/close
                    self.failure = error

    def put(self, rows: list[dict[str, Any]]) -> None:
        """Queue one row group (blocks while the previous one is still queued)."""
        self._raise()
        self.queue.put(rows)
        self.groups += 1

    def close(self) -> None:
        """Wait for the queued groups, close the file, raise what the thread met."""
        self.queue.put(None)
        self.thread.join()
        self.writer.close()
        self._raise()

    def _raise(self) -> None:
        if self.failure is not None:
            raise self.failure


def rows_in_key_order(
    path: Location, columns: Sequence[str] | None = None, batch_rows: int = 16
) -> Iterator[dict[str, Any]]:
    """The rows of a unit file in key order (stable), read `batch_rows` at a time.

    Unit files are written sorted by key, so they stream; a file that is not (written by
    other tools) is read whole and sorted, as before streaming.
    """
    keys = read_table(path, columns=["key"])["key"].to_numpy(zero_copy_only=False)
    if keys.size < 2 or bool(np.all(keys[:-1] <= keys[1:])):
        handle = parquet_file(path, pre_buffer=False, buffer_size=1 << 20)
        for batch in handle.iter_batches(batch_size=batch_rows, columns=columns):
            yield from batch.to_pylist()
        return
    table = read_table(path, columns=columns)
    order = np.argsort(keys, kind="stable")
    for start in range(0, len(order), batch_rows):
        yield from table.take(order[start : start + batch_rows]).to_pylist()


class KeyedRows:
    """Rows of a key-sorted unit file looked up by key, one row group in memory at a time."""

    def __init__(self, path: Location) -> None:
        self.handle = parquet_file(path) if path.exists() else None
        self.where: dict[str, int] = {}
        if self.handle is not None:
            for group in range(self.handle.num_row_groups):
                keys = self.handle.read_row_group(group, columns=["key"])["key"].to_pylist()
                self.where.update((key, group) for key in keys)
        self.group, self.rows = -1, {}

    def get(self, key: str) -> dict[str, Any] | None:
        """The last row with `key` (as a dict built from the file would hold), or None; reads
        the key's row group when it is not the open one."""
        group = self.where.get(key)
        if group is None:
            return None
        if group != self.group:
            self.rows = {}  # the old group goes before the next is read
            table = self.handle.read_row_group(group)
            self.rows = {row["key"]: row for row in table.to_pylist()}
            self.group = group
        return self.rows[key]


def unit_manifest(out_dir: Location, unit: str) -> dict[str, Any]:
    """Small summary of a finished unit: rows and quarantined counts (never arrays)."""
    return {
        "unit": unit,
        "rows": read_metadata(out_dir / f"{unit}.parquet").num_rows,
        "quarantined": read_metadata(error_path(out_dir, unit)).num_rows,
    }


def remove_stale(out_dir: Location, units: Iterable[str]) -> list[str]:
    """Delete unit files of an earlier plan that this plan no longer has, and the temporary
    files a killed run left anywhere under `out_dir`; the unit files' names. Call it once
    every unit is written (no write is in flight then)."""
    remove_temporaries(out_dir)
    keep = {f"{u}.parquet" for u in units}
    stale = []
    for folder in (out_dir, *(out_dir / side for side in SIDE_DIRS)):
        for path in listing(folder, "*.parquet"):
            if path.name not in keep:
                path.unlink()
                stale.append(path.name if folder == out_dir else f"{folder.name}/{path.name}")
    return stale


def file_keys(path: Location) -> list[str]:
    """The `key` column of one Parquet file (empty when the file does not exist)."""
    return read_table(path, columns=["key"])["key"].to_pylist() if path.exists() else []


def read_quarantine(out_dir: Location) -> pa.Table:
    """All quarantine rows of a stage folder, sorted by key."""
    paths = listing(out_dir / ERRORS_DIR, "*.parquet")
    if not paths:
        return QUARANTINE_SCHEMA.empty_table()
    return pa.concat_tables(read_table(p) for p in paths).sort_by("key")

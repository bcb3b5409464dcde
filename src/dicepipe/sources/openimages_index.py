"""The seeded bottom-n of OpenImages index CSVs, read with pyarrow (9M rows in seconds).

Only the columns a unit needs (`ImageID` and, when asked, `Rotation`, `OriginalMD5`) are
converted; candidates live in Arrow columns and one uint64 hash array, cut back to the n
smallest hashes every `MERGE_ROWS` rows, so memory is O(n) whatever the index's size. The
selection equals `sampling.bottom_k_items` over `iter_index` (the same items, the
same first payload of a repeated id). A file pyarrow cannot read as a clean table (a row with
the wrong number of fields, bytes that are not UTF-8, no `ImageID` column) is read by
`iter_index` instead, which quarantines such rows one by one.
"""

from __future__ import annotations

import csv as std_csv
import io
import posixpath
from collections.abc import Callable, Iterator
from functools import partial

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from dicepipe.sampling import bottom_k_items, smallest_hashes, stable_hashes

KEY_PREFIX = "openimages/"
MERGE_ROWS = 1 << 16  # candidates gathered before cutting back to n
BLOCK_BYTES = 1 << 20  # CSV bytes per batch: larger blocks cost RSS (read ahead), not speed
Candidates = Callable[[int | None], pa.Table]  # a batch's candidates below a hash ceiling
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowKeyError, KeyError)


def candidate_schema(columns: tuple[str, ...]) -> pa.Schema:
    """Candidate rows: the hash, where the row is (file number, record number), the id, the
    kept index columns, and the problem of a row that cannot name an image (or null)."""
    fields = [("hash", pa.uint64()), ("part", pa.int32()), ("number", pa.int64())]
    fields += [("ImageID", pa.string())] + [(c, pa.string()) for c in columns]
    return pa.schema(fields + [("problem", pa.string())])


def select_rows(files: list[str], n: int, seed: int, columns: tuple[str, ...]) -> pa.Table:
    """The n rows of all `files` with the smallest seeded key hash, sorted by hash: a table of
    `candidate_schema(columns)` (empty cells and absent columns read as "")."""
    schema = candidate_schema(columns)
    kept = schema.empty_table()
    for part, url in enumerate(files):
        try:
            kept = _merge_file(kept, _file_batches(url, part, seed, columns, schema), n)
        except _ARROW_ERRORS:
            kept = _merge([kept, _file_by_rows(url, part, n, seed, columns, schema)], n)
    pa.default_memory_pool().release_unused()  # the reader's blocks: give them back to the OS
    return kept


def _merge_file(kept: pa.Table, batches: Iterator[Candidates], n: int) -> pa.Table:
    """`kept` merged with the candidates of one file. Once n rows are kept, a row can only
    enter with a hash at most the n-th smallest so far: the others are never materialised."""
    pending, rows = [kept], kept.num_rows
    ceiling = _ceiling(kept, n)
    for batch in batches:
        table = batch(ceiling)
        pending.append(table)
        rows += table.num_rows
        if rows >= n + MERGE_ROWS or (ceiling is None and rows >= n):
            pending = [_merge(pending, n)]
            rows, ceiling = pending[0].num_rows, _ceiling(pending[0], n)
    return _merge(pending, n)


def _ceiling(kept: pa.Table, n: int) -> int | None:
    return int(kept["hash"][-1].as_py()) if kept.num_rows >= n else None


def _merge(tables: list[pa.Table], n: int) -> pa.Table:
    """The n smallest-hash rows of `tables`, in hash order; a repeated id keeps its first row."""
    table = pa.concat_tables(tables)
    hashes = table["hash"].to_numpy()
    keys = table["ImageID"]
    chosen = smallest_hashes(hashes, _LazyKeys(keys), n)
    return table.take(pa.array(chosen, pa.int64()))


class _LazyKeys:
    """Keys fetched one at a time: only rows with equal hashes are ever compared."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self.column = column

    def __getitem__(self, index: int) -> str:
        return self.column[int(index)].as_py()


def _file_batches(
    url: str, part: int, seed: int, columns: tuple[str, ...], schema: pa.Schema
) -> Iterator[Candidates]:
    """The candidates of one index file, batch by batch, read by pyarrow's CSV reader."""
    name = posixpath.basename(url)
    convert = csv.ConvertOptions(
        include_columns=["ImageID", *columns],
        include_missing_columns=True,
        column_types={c: pa.string() for c in ("ImageID", *columns)},
    )
    parse = csv.ParseOptions(newlines_in_values=True)
    read = csv.ReadOptions(block_size=BLOCK_BYTES, use_threads=True)
    with fsspec.open(url, "rb") as raw:
        if "ImageID" not in _header(raw.readline()):
            raise KeyError("ImageID")  # iter_index says what is wrong with the file
        raw.seek(0)
        reader = csv.open_csv(raw, read_options=read, parse_options=parse, convert_options=convert)
        number = 0
        for batch in reader:
            yield partial(_candidates, batch, part, number, name, seed, columns, schema)
            number += batch.num_rows


def _header(line: bytes) -> list[str]:
    text = line.decode("utf-8-sig", errors="replace")
    return next(std_csv.reader([text]), [])


def _candidates(
    batch: pa.RecordBatch,
    part: int,
    first: int,
    name: str,
    seed: int,
    columns: tuple[str, ...],
    schema: pa.Schema,
    ceiling: int | None,
) -> pa.Table:
    """The rows of one CSV batch as candidates: those with a hash at most `ceiling`."""
    numbers = np.arange(first, first + batch.num_rows, dtype=np.int64)
    ids = pc.fill_null(batch.column("ImageID"), "")
    empty = np.flatnonzero(pc.equal(ids, "").to_numpy(zero_copy_only=False))
    problem = pa.nulls(batch.num_rows, pa.string())
    if len(empty):  # a key of its own, so that it is counted, not merged
        ids = ids.to_pylist()
        for i in empty.tolist():
            ids[i] = f"{name}:row-{first + i}"
        ids = pa.array(ids, pa.string())
        messages = [None] * batch.num_rows
        for i in empty.tolist():
            messages[i] = f"{name} row {first + i}: empty ImageID"
        problem = pa.array(messages, pa.string())
    hashes = stable_hashes(seed, KEY_PREFIX, ids.cast(pa.binary()).to_pylist())
    arrays = [pa.array(hashes), pa.array(np.full(batch.num_rows, part, np.int32)), numbers, ids]
    arrays += [pc.fill_null(batch.column(c), "") for c in columns] + [problem]
    table = pa.Table.from_arrays(arrays, schema=schema)
    # filtering copies, even when every row passes: the kept rows never pin the read blocks
    keep = hashes <= ceiling if ceiling is not None else np.ones(len(hashes), bool)
    return table.filter(pa.array(keep))


def iter_index(index_url: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Stream (row number, row) pairs from the index CSV; never holds the table in memory.

    A byte-order mark is ignored; bytes that are not UTF-8 become U+FFFD (so the id fails
    `check_safe_name`); a row with more or fewer fields than the header, or one the CSV
    parser refuses, is still yielded, with `_problem` saying what is wrong (its item is
    quarantined as `bad_index_row`), so a damaged line costs only itself.
    """
    with fsspec.open(index_url, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
        reader = std_csv.reader(text)
        try:
            header = next(reader, None)
        except std_csv.Error as error:
            raise ValueError(f"{index_url}: unreadable index header: {error}") from None
        if header is None or "ImageID" not in header:
            raise ValueError(f"{index_url}: not an OpenImages index (no ImageID column)")
        number, name = 0, posixpath.basename(index_url)
        while True:
            try:
                values = next(reader, None)
            except std_csv.Error as error:
                row = {"_problem": f"unparsable: {error}"}
            else:
                if values is None:
                    return
                if not values:
                    continue  # a blank line, as csv.DictReader skips it
                row = dict(zip(header, values, strict=False))
                if len(values) != len(header):
                    row["_problem"] = f"{len(values)} fields, the header has {len(header)}"
            if not row.get("ImageID"):  # a key of its own, so that it is counted, not merged
                row.setdefault("_problem", "empty ImageID")
                row["ImageID"] = f"{name}:row-{number}"
            yield number, row
            number += 1


def _file_by_rows(
    url: str, part: int, n: int, seed: int, columns: tuple[str, ...], schema: pa.Schema
) -> pa.Table:
    """A damaged index file, read row by row (`iter_index`): its bottom-n."""
    name = posixpath.basename(url)
    chosen = bottom_k_items(
        ((f"{KEY_PREFIX}{row['ImageID']}", (number, row)) for number, row in iter_index(url)),
        n,
        seed,
    )
    rows = []
    for key, (number, row) in chosen:
        record = {c: row.get(c) or "" for c in columns}
        problem = f"{name} row {number}: {row['_problem']}" if "_problem" in row else None
        hashes = stable_hashes(seed, "", [key.encode()])
        rows.append(
            {"hash": int(hashes[0]), "part": part, "number": number, "ImageID": row["ImageID"]}
            | record
            | {"problem": problem}
        )
    return pa.Table.from_pylist(rows, schema=schema)

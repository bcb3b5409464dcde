"""A Parquet index of a COCO-format annotations file, built in the one streamed read that
planning needs anyway, so that later plans read no annotation byte and a unit reads only the
records of its own images, never the whole JSON (368 MB for COCO-ReM).

`<folder>/coco-<sha256>/` holds
- `images.parquet`: every distinct image id (`id_int` or `id_str`), its `rank` in id order and
  whether any annotation (`annotated`) or one with labelled keypoints (`posed`) names it; the
  file's URL, sha256 and categories in the schema metadata;
- `records.parquet`: every image record and every annotation of an image, as the JSON text of
  the parsed record (`kind` 0 image, 1 annotation; `seq` its place in its list), sorted by the
  image's rank, in row groups of consecutive ranks: a unit's images, a block of consecutive
  ranks, are read from the few row groups whose rank statistics overlap its block.
`<folder>/coco-<identity digest>.json` points from the file's identity (size, ETag or mtime;
`listings.file_identity`) to the sha256; it is written last, so it marks a complete index.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dicepipe.sources.coco_checks import id_order, record_id
from dicepipe.sources.coco_stream import stream_coco
from dicepipe.sources.listings import cached_listing
from dicepipe.storage import Location, atomic_path, is_remote, location, parquet_file, write_parquet

RECORDS_SCHEMA = pa.schema(
    [("rank", pa.int64()), ("kind", pa.int8()), ("seq", pa.int64()), ("record", pa.string())]
)
IMAGES_SCHEMA = pa.schema(
    [
        ("id_int", pa.int64()),
        ("id_str", pa.string()),
        ("rank", pa.int64()),
        ("annotated", pa.bool_()),
        ("posed", pa.bool_()),
    ]
)
SPILL_RECORDS = 20_000  # records held before they are written to the spill file
PART_BYTES = 16 << 20  # record text per sorting partition: bounds memory while sorting
GROUP_ROWS = 2_000  # records per row group of the index: what a unit reads at least
IMAGE, ANNOTATION = 0, 1


@dataclass(frozen=True)
class IndexedFile:
    """An annotations file's index: its folder and the file's sha256."""

    folder: str
    sha256: str


def annotation_index(url: str, folder: Location) -> IndexedFile:
    """The index of the annotations file at `url` in `folder`, built (one streamed read of the
    file) unless one of the file's current identity is there. A file that is not COCO JSON or
    holds a record without a usable id is a ValueError naming it, as when planning."""
    pointer = cached_listing(url, folder, "coco", lambda u: (_build(u, folder), True))
    return IndexedFile(str(folder / f"coco-{pointer['sha256']}"), pointer["sha256"])


def image_ids(index: IndexedFile, only: str | None = None) -> list[Any]:
    """The distinct image ids of the file in id order; `only` = "annotated" or "posed" keeps
    those an annotation (one with labelled keypoints) names."""
    table = _read(location(index.folder) / "images.parquet")
    if only is not None:
        table = table.filter(table[only])
    ints, strings = table["id_int"].to_pylist(), table["id_str"].to_pylist()
    return [s if i is None else i for i, s in zip(ints, strings, strict=True)]


def read_records(
    index: IndexedFile, wanted: set[Any]
) -> tuple[dict[Any, list[dict]], dict[Any, list[dict]], dict[Any, dict]]:
    """(image records by id, annotations by image id, categories by id) of the `wanted` image
    ids, read from the row groups holding their ranks only."""
    folder = location(index.folder)
    images = _read(folder / "images.parquet")
    ranks = _ranks_of(images, wanted)
    categories = json.loads(images.schema.metadata[b"categories"])
    by_image: dict[Any, list[dict]] = {}
    by_owner: dict[Any, list[dict]] = {}
    for table in _rank_groups(folder / "records.parquet", ranks):
        for kind, text in zip(table["kind"].to_pylist(), table["record"].to_pylist(), strict=True):
            record = json.loads(text)
            if kind == IMAGE:
                by_image.setdefault(record["id"], []).append(record)
            else:
                by_owner.setdefault(record["image_id"], []).append(record)
    by_category: dict[Any, dict] = {}
    for category in categories:
        by_category.setdefault(category["id"], category)
    return by_image, by_owner, by_category


def _rank_groups(path: Location, ranks: list[int]) -> Iterator[pa.Table]:
    """The records of `ranks`, one row group at a time, reading only the row groups whose
    rank statistics overlap them (memory: one row group)."""
    if not ranks:
        return
    source = parquet_file(path)
    wanted = pa.array(sorted(ranks), pa.int64())
    lo, hi = min(ranks), max(ranks)
    for group in range(source.num_row_groups):
        stats = source.metadata.row_group(group).column(0).statistics
        if stats is not None and stats.has_min_max and (stats.max < lo or stats.min > hi):
            continue
        table = source.read_row_group(group)
        yield table.filter(pc.is_in(table["rank"], wanted))


def _ranks_of(images: pa.Table, wanted: set[Any]) -> list[int]:
    ints = pa.array([i for i in wanted if type(i) is int], pa.int64())
    strings = pa.array([i for i in wanted if isinstance(i, str)], pa.string())
    chosen = pc.or_kleene(pc.is_in(images["id_int"], ints), pc.is_in(images["id_str"], strings))
    return images.filter(chosen)["rank"].to_pylist()


def _owner(value: Any) -> str:
    return f"i{value}" if type(value) is int else f"s{value}"


def _build(url: str, folder: Location) -> dict[str, str]:
    """Stream the file once into a spill file in file order, then sort it into the index by
    image rank, one partition of ranks at a time; the pointer to write. The spill lies beside
    a local index, in the temporary folder for a remote one."""
    scratch = None
    if not is_remote(folder):
        folder.mkdir(parents=True, exist_ok=True)
        scratch = folder
    handle, name = tempfile.mkstemp(prefix=".coco-spill.", suffix=".tmp", dir=scratch)
    os.close(handle)
    spill = Path(name)  # a killed run's spill is swept with the stage's temporary files
    try:
        collected = _spill(url, spill)
        target = folder / f"coco-{collected.sha256}"
        ranks = {_owner(i): rank for rank, i in enumerate(collected.ordered_ids())}
        _write_images(target / "images.parquet", collected, ranks, url)
        _write_records(target / "records.parquet", spill, ranks, collected.bytes_by_owner)
    finally:
        spill.unlink(missing_ok=True)
    return {"sha256": collected.sha256, "url": url}


class _Collected:
    """What the streamed read keeps besides the spill: ids, flags, bytes per image."""

    def __init__(self) -> None:
        self.ids: dict[str, Any] = {}
        self.annotated: set[str] = set()
        self.posed: set[str] = set()
        self.bytes_by_owner: dict[str, int] = {}
        self.categories: list[dict] = []
        self.sha256 = ""

    def ordered_ids(self) -> list[Any]:
        return sorted(self.ids.values(), key=id_order)


def _spill(url: str, spill: Path) -> _Collected:
    collected = _Collected()
    pending: list[tuple[str, int, int, str]] = []
    writer = pq.ParquetWriter(str(spill), _SPILL_SCHEMA, compression="zstd")

    def keep(owner: str, kind: int, seq: int, record: Any) -> None:
        text = json.dumps(record, separators=(",", ":"))
        collected.bytes_by_owner[owner] = collected.bytes_by_owner.get(owner, 0) + len(text)
        pending.append((owner, kind, seq, text))
        if len(pending) >= SPILL_RECORDS:
            _flush(writer, pending)

    def on_image(number: int, record: Any) -> None:
        value = record_id(url, "images", number, record)
        collected.ids.setdefault(_owner(value), value)
        keep(_owner(value), IMAGE, number, record)

    def on_annotation(number: int, record: Any) -> None:
        owner = _owner(record_id(url, "annotations", number, record, "image_id"))
        collected.annotated.add(owner)
        labelled = record.get("num_keypoints")
        if not isinstance(labelled, bool) and isinstance(labelled, int | float) and labelled > 0:
            collected.posed.add(owner)
        keep(owner, ANNOTATION, number, record)

    def on_category(number: int, category: Any) -> None:
        if isinstance(category, dict) and type(category.get("id")) in (int, str):
            collected.categories.append(category)

    callbacks = {"images": on_image, "annotations": on_annotation, "categories": on_category}
    try:
        collected.sha256, counts = stream_coco(url, callbacks)
        _flush(writer, pending)
    finally:
        writer.close()
    if not counts["images"]:
        raise ValueError(f"{url}: not a COCO annotations file (no `images` records)")
    return collected


_SPILL_SCHEMA = pa.schema(
    [("owner", pa.string()), ("kind", pa.int8()), ("seq", pa.int64()), ("record", pa.string())]
)


def _flush(writer: pq.ParquetWriter, pending: list[tuple[str, int, int, str]]) -> None:
    if pending:
        columns = list(zip(*pending, strict=True))
        arrays = dict(zip(_SPILL_SCHEMA.names, columns, strict=True))
        writer.write_table(pa.table(arrays, schema=_SPILL_SCHEMA))
        pending.clear()


def _write_images(path: Location, collected: _Collected, ranks: dict[str, int], url: str) -> None:
    ordered = collected.ordered_ids()
    owners = [_owner(i) for i in ordered]
    table = pa.table(
        {
            "id_int": pa.array([i if type(i) is int else None for i in ordered], pa.int64()),
            "id_str": pa.array([i if isinstance(i, str) else None for i in ordered], pa.string()),
            "rank": pa.array([ranks[o] for o in owners], pa.int64()),
            "annotated": pa.array([o in collected.annotated for o in owners], pa.bool_()),
            "posed": pa.array([o in collected.posed for o in owners], pa.bool_()),
        },
        schema=IMAGES_SCHEMA,
    )
    metadata = {"url": url, "sha256": collected.sha256}
    metadata["categories"] = json.dumps(collected.categories, separators=(",", ":"))
    write_parquet(path, table.replace_schema_metadata(metadata))


def _write_records(
    path: Location, spill: Path, ranks: dict[str, int], bytes_by_owner: dict[str, int]
) -> None:
    """Sort the spill by (rank, kind, seq) into `path`: one read of the spill deals its rows
    into partitions of consecutive ranks (Arrow IPC files beside it), then each partition is
    sorted in memory and appended (memory: one partition, about PART_BYTES of text)."""
    bounds = _partition_bounds(ranks, bytes_by_owner)
    # named like the spill, so that the temporary-file sweep finds those of a killed run
    parts = [spill.with_name(f"{spill.stem}.part{n}.tmp") for n in range(len(bounds))]
    try:
        _deal(spill, ranks, bounds, parts)
        with atomic_path(path) as tmp, pq.ParquetWriter(str(tmp), RECORDS_SCHEMA) as writer:
            for part in parts:
                with pa.memory_map(str(part)) as source:
                    table = pa.ipc.open_file(source).read_all()
                order = [("rank", "ascending"), ("kind", "ascending"), ("seq", "ascending")]
                writer.write_table(table.sort_by(order), row_group_size=GROUP_ROWS)
                del table
    finally:
        for part in parts:
            part.unlink(missing_ok=True)


def _deal(spill: Path, ranks: dict[str, int], bounds: list[tuple], parts: list[Path]) -> None:
    """Append every spilled record of an image to the partition of its rank (annotations of
    no image are never read by a unit, so they are left out)."""
    starts = np.array([lo for lo, _ in bounds], np.int64)
    writers = [pa.ipc.new_file(str(part), RECORDS_SCHEMA) for part in parts]
    try:
        source = pq.ParquetFile(str(spill))
        for group in range(source.num_row_groups):
            table = source.read_row_group(group)
            rank = np.array([ranks.get(o, -1) for o in table["owner"].to_pylist()], np.int64)
            where = np.searchsorted(starts, rank, side="right") - 1
            columns = {"rank": pa.array(rank), "kind": table["kind"], "seq": table["seq"]}
            piece = pa.table(columns | {"record": table["record"]}, schema=RECORDS_SCHEMA)
            for number in np.unique(where[rank >= 0]).tolist():
                writers[number].write_table(piece.filter(pa.array((where == number) & (rank >= 0))))
    finally:
        for writer in writers:
            writer.close()


def _partition_bounds(ranks: dict[str, int], bytes_by_owner: dict[str, int]) -> list[tuple]:
    """[lo, hi) rank ranges of about PART_BYTES of record text each."""
    sizes = [0] * len(ranks)
    for owner, size in bytes_by_owner.items():
        if owner in ranks:
            sizes[ranks[owner]] += size
    bounds, start, total = [], 0, 0
    for rank, size in enumerate(sizes):
        total += size
        if total >= PART_BYTES:
            bounds.append((start, rank + 1))
            start, total = rank + 1, 0
    if start < len(sizes) or not bounds:
        bounds.append((start, len(sizes)))
    return bounds


def _read(path: Location) -> pa.Table:
    """A whole small Parquet file (ParquetFile, not the dataset reader: ~40 MB less RSS)."""
    return parquet_file(path).read()

"""Training shards: Parquet with HF `datasets` image features, and their sha256 manifest."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dicepipe.storage import sha256_file, write_json, write_parquet

IMAGE_COLUMNS = ("image", "target")
MANIFEST_NAME = "manifest.json"
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


def write_shard(path: str | Path, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Write rows (sorted by key, task for byte-stable output) as one shard; its manifest entry.

    Image bytes are stored as they are (already PNG/JPEG): compressing them again costs time
    and saves nothing, so only the other columns are zstd-compressed.
    """
    ordered = sorted(rows, key=lambda r: (r["key"], r["task"]))
    table = pa.Table.from_pylist(ordered, schema=shard_schema())
    compression = {name: "zstd" for name in table.column_names}
    compression.update({f"{name}.bytes": "none" for name in IMAGE_COLUMNS})
    compression.update({f"{name}.path": "none" for name in IMAGE_COLUMNS})
    mean_row = max(1, table.nbytes // max(1, table.num_rows))
    write_parquet(
        path,
        table,
        compression=compression,
        use_dictionary=["key", "task", "prompt", "source", "teacher"],
        row_group_size=max(1, ROW_GROUP_BYTES // mean_row),
    )
    return shard_entry(path)


def shard_entry(path: str | Path) -> dict[str, Any]:
    """The manifest entry of a shard file: name, rows, bytes, sha256 and per-task counts."""
    path = Path(path)
    tasks = Counter(pq.read_table(path, columns=["task"])["task"].to_pylist())
    return {
        "path": path.name,
        "rows": pq.read_metadata(path).num_rows,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "tasks": dict(sorted(tasks.items())),
    }


def rows_per_source(shards_dir: str | Path) -> dict[str, int]:
    """Rows of every shard in a folder, counted by the `source` column."""
    counts: Counter[str] = Counter()
    for path in sorted(Path(shards_dir).glob("*.parquet")):
        counts.update(pq.read_table(path, columns=["source"])["source"].to_pylist())
    return dict(sorted(counts.items()))


def write_manifest(shards_dir: str | Path, entries: Sequence[dict[str, Any]], **extra: Any) -> dict:
    """Write `manifest.json`: every shard with sha256, rows, bytes, per-task counts, totals."""
    shards = sorted(entries, key=lambda e: e["path"])
    tasks: Counter[str] = Counter()
    for entry in shards:
        tasks.update(entry["tasks"])
    manifest = {
        "shards": shards,
        "rows": sum(e["rows"] for e in shards),
        "bytes": sum(e["bytes"] for e in shards),
        "tasks": dict(sorted(tasks.items())),
        **extra,
    }
    write_json(Path(shards_dir) / MANIFEST_NAME, manifest)
    return manifest


def read_manifest(shards_dir: str | Path) -> dict[str, Any]:
    """Load `manifest.json` from a shards folder."""
    return json.loads((Path(shards_dir) / MANIFEST_NAME).read_text())


def verify_manifest(shards_dir: str | Path) -> list[str]:
    """Problems found comparing the manifest with the files on disk (empty when all match)."""
    problems = []
    for entry in read_manifest(shards_dir)["shards"]:
        path = Path(shards_dir) / entry["path"]
        if not path.exists():
            problems.append(f"{entry['path']}: missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
        elif pq.read_metadata(path).num_rows != entry["rows"]:
            problems.append(f"{entry['path']}: row count differs from the manifest")
    return problems

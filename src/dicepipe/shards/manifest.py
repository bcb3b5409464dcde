"""The shards' sha256 manifest: write, read, verify, and list the shard files of a folder."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from dicepipe.storage import (
    Location,
    listing,
    location,
    read_metadata,
    read_table,
    sha256_file,
    write_json,
)

MANIFEST_NAME = "manifest.json"


def shard_entry(path: str | Location) -> dict[str, Any]:
    """The manifest entry of a shard file: name, rows, bytes, sha256 and per-task counts."""
    path = location(path)
    tasks = Counter(read_table(path, columns=["task"])["task"].to_pylist())
    return {
        "path": path.name,
        "rows": read_metadata(path).num_rows,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "tasks": dict(sorted(tasks.items())),
    }


def rows_per_source(shards_dir: str | Location) -> dict[str, int]:
    """Rows of every shard in a folder, counted by the `source` column."""
    counts: Counter[str] = Counter()
    for path in listing(location(shards_dir), "*.parquet"):
        counts.update(read_table(path, columns=["source"])["source"].to_pylist())
    return dict(sorted(counts.items()))


def write_manifest(
    shards_dir: str | Location, entries: Sequence[dict[str, Any]], **extra: Any
) -> dict:
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
    write_json(location(shards_dir) / MANIFEST_NAME, manifest)
    return manifest


def read_manifest(shards_dir: str | Location) -> dict[str, Any]:
    """Load `manifest.json` from a shards folder."""
    return json.loads((location(shards_dir) / MANIFEST_NAME).read_text())


def verify_manifest(shards_dir: str | Location) -> list[str]:
    """Problems found comparing the manifest with the files on disk (empty when all match)."""
    problems = []
    for entry in read_manifest(shards_dir)["shards"]:
        path = location(shards_dir) / entry["path"]
        if not path.exists():
            problems.append(f"{entry['path']}: missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
        elif read_metadata(path).num_rows != entry["rows"]:
            problems.append(f"{entry['path']}: row count differs from the manifest")
    return problems


def shards_identity(shards_dir: str | Location) -> str:
    """A digest of the shards' content: the manifest's (path, sha256) pairs, or the files'
    own sha256 when there is no manifest. Equal digests mean the same training data."""
    folder = location(shards_dir)
    if (folder / MANIFEST_NAME).exists():
        pairs = [(e["path"], e["sha256"]) for e in read_manifest(folder)["shards"]]
    else:
        pairs = [(p.name, sha256_file(p)) for p in listing(folder, "*.parquet")]
    return hashlib.sha256(json.dumps(sorted(pairs)).encode()).hexdigest()[:16]


def shard_paths(shards_dir: str | Location) -> list[Location]:
    """The shard files of a folder: those its manifest lists, else every `*.parquet`."""
    folder = location(shards_dir)
    if (folder / MANIFEST_NAME).exists():
        return [folder / e["path"] for e in read_manifest(folder)["shards"]]
    return listing(folder, "*.parquet")


def load_problems(shards_dir: str | Location, expected_rows: int | None = None) -> list[str]:
    """Load the folder the way users do, `datasets.load_dataset("parquet", data_files=
    "<folder>/*.parquet", split="train")` (streamed, images left encoded, so nothing is
    copied), read every row, and say what fails: an unreadable shard (a 0-row Parquet file
    makes `datasets` raise "BatchSize must be greater than 0") or a row count that is not
    the manifest's."""
    import datasets

    folder = location(shards_dir)
    if not listing(folder, "*.parquet"):
        return [f"{folder}: no *.parquet file for datasets.load_dataset to read"]
    try:
        dataset = datasets.load_dataset(
            "parquet", data_files=str(folder / "*.parquet"), split="train", streaming=True
        )
        rows = sum(b.num_rows for b in dataset.with_format("arrow").iter(batch_size=4096))
    except Exception as error:  # noqa: BLE001 - whatever fails, users would see it fail
        return [f"datasets.load_dataset fails: {type(error).__name__}: {error}"]
    if expected_rows is not None and rows != expected_rows:
        return [f"datasets.load_dataset reads {rows} rows, the manifest says {expected_rows}"]
    return []

"""OpenImages: the published image-id index CSV plus a folder or URL of `<ImageID>.jpg`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import fsspec

from dicepipe.params import OpenImagesParams
from dicepipe.sampling import bottom_k_items
from dicepipe.sources.common import ItemError, Unit, join_url, read_bytes, sample_row

SOURCE = "openimages"


def iter_index(index_url: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Stream (row number, row) pairs from the index CSV; never holds the table in memory."""
    with fsspec.open(index_url, "rb") as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        if reader.fieldnames is None or "ImageID" not in reader.fieldnames:
            raise ValueError(f"{index_url}: not an OpenImages index (no ImageID column)")
        yield from enumerate(reader)


def plan_units(params: OpenImagesParams, seed: int) -> list[Unit]:
    """Select `params.n` image ids by seeded hash and group them by fixed blocks of index rows."""
    if params.n == 0:
        return []
    rows = (
        (f"{SOURCE}/{row['ImageID']}", (number, row)) for number, row in iter_index(params.index)
    )
    picked = bottom_k_items(rows, params.n, seed)
    blocks: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for _, (number, row) in picked:
        blocks.setdefault(number // params.block_rows, []).append((row["ImageID"], dict(row)))
    return [
        Unit(SOURCE, f"{SOURCE}-{block:06d}", params.images, tuple(sorted(items)))
        for block, items in sorted(blocks.items())
    ]


def read_unit(unit: Unit, max_pixels: int) -> tuple[list[dict], list[tuple[str, ItemError]]]:
    """Fetch and validate every selected image of one block: (rows, [(key, error)])."""
    rows, errors = [], []
    for image_id, _row in unit.items:
        url = join_url(unit.location, f"{image_id}.jpg")
        try:
            data = read_bytes(url)
            rows.append(sample_row(SOURCE, image_id, unit.name, url, data, [], max_pixels))
        except ItemError as error:
            errors.append((f"{SOURCE}/{image_id}", error))
    return rows, errors

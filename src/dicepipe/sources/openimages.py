"""OpenImages: the published image-id index CSV plus a folder or URL of `<ImageID>.jpg`.

The index may be one CSV or a glob of several (the published train/validation/test files);
selection is a streaming bottom-k over all of them, so the same ids come out either way.

`Rotation` (published since 2018-05) is the number of degrees, one of 0/90/180/270, that the
image and its boxes should be turned *counterclockwise* to recover the author's intended
orientation (storage.googleapis.com/openimages/web/2018-05-17-rotation-information.html); it
comes from the original file's EXIF, which the resized mirror files lost. Empty or `nan`
means unknown and is treated as 0. It is applied only to files without an EXIF orientation
of their own (a mirror of the original files keeps EXIF, which the decoder already applies).

`OriginalMD5` is the base64 MD5 of the *original* Flickr file: `verify_md5` is only meaningful
for mirrors of the original files, not for resized copies.
"""

from __future__ import annotations

import base64
import hashlib
import io
import posixpath
import re
import warnings
from collections.abc import Iterator
from typing import Any

from PIL import Image

from dicepipe.imageio import exif_orientation
from dicepipe.params.sample import OpenImagesParams, SampleParams
from dicepipe.sources.common import (
    ItemError,
    Outcome,
    Unit,
    expand_paths,
    join_url,
    read_bytes,
    row_outcome,
    sample_row,
    unit_name,
)
from dicepipe.sources.openimages_index import select_rows

SOURCE = "openimages"
READ_FIELDS = ("apply_rotation", "verify_md5")  # the params that change what a unit writes
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")


def index_files(params: OpenImagesParams) -> list[str]:
    """The index CSVs named by `params.index` (a path, URL or glob); none is a config error."""
    files = expand_paths([params.index])
    if not files:
        raise FileNotFoundError(f"sample.openimages.index: nothing matches {params.index!r}")
    return files


def plan_units(params: OpenImagesParams, seed: int) -> list[Unit]:
    """Select `params.n` image ids by seeded hash and group them by fixed blocks of index rows
    (per index file when there are several). Items carry only the index cells their unit
    reads (`Rotation` when `apply_rotation`, `OriginalMD5` when `verify_md5`)."""
    if params.n == 0:
        return []
    files = index_files(params)
    columns = kept_columns(params)
    chosen = select_rows(files, params.n, seed, columns)
    blocks: dict[tuple[int, int], list[tuple[str, dict[str, Any]]]] = {}
    shared: dict[tuple[str, ...], dict[str, str]] = {}  # one dict per distinct info: O(n) RSS
    for batch in chosen.to_batches(max_chunksize=1 << 16):  # Python objects of a slice at once
        cells = [batch[c].to_pylist() for c in ("part", "number", "ImageID", "problem", *columns)]
        for part, number, image_id, problem, *values in zip(*cells, strict=True):
            info = shared.get(tuple(values)) if problem is None else None
            if info is None:
                info = dict(zip(columns, values, strict=True))
                if problem is None:
                    shared[tuple(values)] = info
                else:
                    info["problem"] = problem
            blocks.setdefault((part, number // params.block_rows), []).append((image_id, info))
    del chosen
    return [
        Unit(SOURCE, _unit_name(files, part, block), params.images, tuple(sorted(items)))
        for (part, block), items in sorted(blocks.items())
    ]


def kept_columns(params: OpenImagesParams) -> tuple[str, ...]:
    """The index columns a unit reads under `params`."""
    wanted = {"Rotation": params.apply_rotation, "OriginalMD5": params.verify_md5}
    return tuple(column for column, needed in wanted.items() if needed)


def _unit_name(files: list[str], part: int, block: int) -> str:
    if len(files) == 1:
        return unit_name(SOURCE, f"{block:06d}")
    return unit_name(SOURCE, posixpath.splitext(posixpath.basename(files[part]))[0], f"{block:06d}")


def iter_unit(unit: Unit, params: SampleParams) -> Iterator[Outcome]:
    """Fetch, check and canonicalise every selected image of one block, in id order."""
    for image_id, info in unit.items:
        yield row_outcome(f"{SOURCE}/{image_id}", _row, unit, image_id, info, params)


def _row(unit: Unit, image_id: str, info: dict[str, Any], params: SampleParams) -> dict:
    if "problem" in info:
        raise ItemError("bad_index_row", info["problem"])
    url = join_url(unit.location, f"{check_safe_name(image_id)}.jpg")
    data = read_bytes(url)
    if params.openimages.verify_md5:
        check_md5(data, info.get("OriginalMD5", ""))
    rotation = parse_rotation(info.get("Rotation", "")) if params.openimages.apply_rotation else 0
    if rotation and _exif_orientation(data) > 1:
        rotation = 0  # the file still carries the EXIF that `Rotation` was derived from
    return sample_row(SOURCE, image_id, unit.name, url, data, [], params.max_pixels, rotation)


def check_safe_name(name: Any) -> str:
    """`name` if it is a plain file name (no folder, no `..`, no odd characters), else an
    ItemError `bad_id`: ids from an index must never address files outside the images root."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise ItemError("bad_id", f"{name!r} is not a plain file name")
    return name


def parse_rotation(value: str | None) -> int:
    """Degrees counterclockwise from the index's `Rotation` cell; empty/nan is 0, anything but
    0/90/180/270 is an ItemError `bad_rotation`."""
    text = (value or "").strip().lower()
    if text in ("", "nan"):
        return 0
    try:
        degrees = float(text)
    except ValueError:
        raise ItemError("bad_rotation", f"Rotation {value!r} is not a number") from None
    if degrees not in (0.0, 90.0, 180.0, 270.0):
        raise ItemError("bad_rotation", f"Rotation {value!r} is not 0, 90, 180 or 270")
    return int(degrees)


def check_md5(data: bytes, expected: str) -> None:
    """Raise ItemError `md5_mismatch` unless the base64 MD5 of `data` equals `expected`."""
    actual = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
    if not expected.strip():
        raise ItemError("md5_mismatch", "verify_md5 is on but the index has no OriginalMD5")
    if actual != expected.strip():
        raise ItemError("md5_mismatch", f"OriginalMD5 is {expected!r}, the file's is {actual!r}")


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation from the header alone (no pixel decode), as
    `imageio.exif_orientation` reads it: 1 when absent, 0 when not a valid value."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return exif_orientation(image)
    except Exception:  # noqa: BLE001 - sample_row reports the decode failure itself
        return 1

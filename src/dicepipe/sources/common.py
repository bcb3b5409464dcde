"""What every source shares: work units, item outcomes, fsspec access, sample rows, COCO RLE."""

from __future__ import annotations

import glob
import io
import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import fsspec
import numpy as np
from PIL import Image

from dicepipe.imageio import ImageDecodeError, canonical_image_bytes, encode_png

_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")


class ItemError(Exception):
    """An item that cannot be used; it becomes a quarantine row with `reason`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (ItemError, (self.reason, self.message))  # picklable for Dask workers


@dataclass(frozen=True)
class Unit:
    """One input shard: an OpenImages index block or one SA-1B tar, with its selected items."""

    source: str
    name: str  # stable, file-name safe, e.g. "openimages-000000", "sa1b-sa_000001"
    location: str  # images root or tar path/URL
    items: tuple[tuple[str, dict[str, Any]], ...] = field(default=())  # (source_id, info)


@dataclass(frozen=True)
class Outcome:
    """Where one selected item ended: a sample row, or a quarantine error; plus notes about
    annotations dropped from a row (dicts with key, annotation_id, reason)."""

    key: str
    row: dict[str, Any] | None = None
    error: ItemError | None = None
    notes: tuple[dict[str, Any], ...] = ()


def collect(
    outcomes: Iterable[Outcome],
) -> tuple[list[dict[str, Any]], list[tuple[str, ItemError]], list[dict[str, Any]]]:
    """Split outcomes into (rows, [(key, error)], notes), keeping their order."""
    rows, errors, notes = [], [], []
    for outcome in outcomes:
        if outcome.error is not None:
            errors.append((outcome.key, outcome.error))
        else:
            rows.append(outcome.row)
            notes.extend(outcome.notes)
    return rows, errors, notes


def expand_paths(patterns: tuple[str, ...] | list[str]) -> list[str]:
    """Expand local globs or fsspec URL globs, keeping local paths as given (relative stays
    relative, so recorded origins do not depend on the machine)."""
    found: set[str] = set()
    for pattern in patterns:
        if "://" in pattern:
            fs, _ = fsspec.core.url_to_fs(pattern)
            protocol = pattern.split("://", 1)[0]
            found.update(f"{protocol}://{p}" for p in fs.glob(pattern))
        else:
            found.update(glob.glob(pattern))
    return sorted(found)


def read_bytes(url: str) -> bytes:
    """Read a whole file from a local path or fsspec URL; a missing or unreadable file is an
    ItemError (`missing_file`, `unreadable_file`)."""
    try:
        with fsspec.open(url, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise ItemError("missing_file", f"{url} does not exist") from None
    except OSError as error:
        raise ItemError("unreadable_file", f"{url}: {error}") from None


def unit_name(source: str, *parts: str) -> str:
    """A file-name-safe unit name `<source>-<part>-...` (odd characters become `_`)."""
    return "-".join(re.sub(r"[^A-Za-z0-9_.-]", "_", p) for p in (source, *parts))


def join_url(root: str, name: str) -> str:
    """Join a folder path or URL with a file name."""
    return f"{root.rstrip('/')}/{name}"


def check_safe_name(name: Any) -> str:
    """`name` if it is a plain file name (no folder, no `..`, no odd characters), else an
    ItemError `bad_id`: ids from an index must never address files outside the images root."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise ItemError("bad_id", f"{name!r} is not a plain file name")
    return name


def sample_row(
    source: str,
    source_id: str,
    unit: str,
    origin: str,
    data: bytes,
    annotations: list[dict[str, Any]],
    max_pixels: int,
    rotate_ccw: int = 0,
) -> dict[str, Any]:
    """Validate and canonicalise one item's image into a row of `records.SAMPLE_SCHEMA`.

    `rotate_ccw` (a multiple of 90) turns the decoded, EXIF-upright image counterclockwise;
    a turned image is stored as PNG so that every reader sees the same pixels.
    """
    size = None if rotate_ccw % 360 else _plain_jpeg_size(data, max_pixels)
    if size is not None:
        image_bytes, (height, width) = data, size
    else:
        image_bytes, rgb = _canonical(data, max_pixels)
        if rotate_ccw % 360:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=(rotate_ccw % 360) // 90))
            image_bytes = encode_png(rgb)
        height, width = rgb.shape[:2]
    return {
        "key": f"{source}/{source_id}",
        "source": source,
        "source_id": source_id,
        "unit": unit,
        "origin": origin,
        "image": image_bytes,
        "width": width,
        "height": height,
        "annotations": json.dumps(annotations, sort_keys=True, separators=(",", ":")),
    }


def _plain_jpeg_size(data: bytes, max_pixels: int) -> tuple[int, int] | None:
    """(height, width) of an upright RGB JPEG that decodes completely, else None.

    The common case, kept byte for byte: its header is read with Pillow (format, mode, EXIF,
    size) and its pixels are checked with OpenCV, which decodes faster than Pillow and, like
    it, refuses truncated data. Anything else (or any doubt) takes the general Pillow path,
    which also names the reason of a failure.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                plain = image.format == "JPEG" and image.mode == "RGB"
                if not plain or width * height > max_pixels or _orientation(image) != 1:
                    return None
    except Exception:  # noqa: BLE001 - the general path reports what is wrong
        return None
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    return (height, width) if pixels is not None and pixels.shape[:2] == (height, width) else None


def _orientation(image: Image.Image) -> int:
    return int(image.getexif().get(0x0112, 1) or 1)


def _canonical(data: bytes, max_pixels: int) -> tuple[bytes, np.ndarray]:
    try:
        image_bytes, decoded = canonical_image_bytes(data, max_pixels)
    except ImageDecodeError as error:
        raise ItemError(error.reason, str(error)) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        # Pillow's own bomb check fires in Image.open, before the max_pixels check.
        raise ItemError("too_many_pixels", str(error)) from None
    except (OSError, EOFError) as error:  # Pillow reading past the end of cut headers
        raise ItemError("truncated", f"{type(error).__name__}: {error}") from None
    except Exception as error:  # noqa: BLE001 - a decoder failing on untrusted bytes
        raise ItemError("undecodable", f"{type(error).__name__}: {error}") from None
    return image_bytes, decoded.rgb


def rle_runs(counts: Any, height: int, width: int) -> np.ndarray:
    """The run lengths of a COCO RLE (compressed string or list of ints), checked to cover
    exactly `height * width` pixels; anything else is an ItemError `invalid_rle`.

    Runs alternate background/foreground, starting with background, in column-major order.
    """
    return rle_runs_many([counts], height, width)[0]


def rle_runs_many(counts: list[Any], height: int, width: int) -> list[np.ndarray]:
    """`rle_runs` of many RLEs of one image; compressed strings are decoded in one pass."""
    texts = {i: c.encode() if isinstance(c, str) else c for i, c in enumerate(counts)}
    texts = {i: t for i, t in texts.items() if isinstance(t, bytes) and t}
    decoded = dict(zip(texts, _decode_rle_strings(list(texts.values())), strict=True))
    runs = []
    for i, c in enumerate(counts):
        if i in decoded:
            runs.append(decoded[i])
        elif isinstance(c, str | bytes):  # empty
            runs.append(np.zeros(0, np.int64))
        elif isinstance(c, list) and all(type(v) is int for v in c):
            runs.append(np.asarray(c, dtype=np.int64))
        else:
            raise ItemError("invalid_rle", f"RLE counts of type {type(c).__name__}")
        if runs[-1].size == 0 or (runs[-1] < 0).any() or runs[-1].sum() != height * width:
            raise ItemError("invalid_rle", f"RLE {i} does not cover {height}x{width} pixels")
    return runs


def _decode_rle_strings(texts: list[bytes]) -> list[np.ndarray]:
    """pycocotools' `rleFrString` over many strings at once: 5-bit groups with a continuation
    bit (0x20), a sign bit (0x10) in a value's last group, and each run from the third on
    stored as a delta to the run two before it."""
    if not texts:
        return []
    c = np.frombuffer(b"".join(texts), dtype=np.uint8).astype(np.int64) - 48
    text_ends = np.cumsum([len(t) for t in texts]) - 1
    if ((c < 0) | (c > 63)).any() or (c[text_ends] & 0x20).any():
        raise ItemError("invalid_rle", "RLE string has bad characters or ends mid-value")
    ends = np.flatnonzero((c & 0x20) == 0)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 7:  # more than 35 bits: no image has runs that long
        raise ItemError("invalid_rle", "RLE string holds an impossibly long run")
    shift = 5 * (np.arange(c.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((c & 0x1F) << shift, starts)
    values = np.where(c[ends] & 0x10, values - (1 << (5 * lengths)), values)
    per_text = np.bincount(np.searchsorted(text_ends, ends), minlength=len(texts))
    first = np.concatenate(([0], np.cumsum(per_text)[:-1]))
    local = np.arange(values.size) - np.repeat(first, per_text)
    odd, late_even = local % 2 == 1, (local % 2 == 0) & (local >= 2)
    runs = values.copy()
    for select in (odd, late_even):  # cumulative sums restarted at every string
        total = np.cumsum(np.where(select, values, 0))
        before = np.concatenate(([0], total))[first]
        runs[select] = (total - np.repeat(before, per_text))[select]
    return np.split(runs, np.cumsum(per_text)[:-1])


def rle_area(runs: np.ndarray) -> int:
    """Foreground pixels of an RLE given as runs."""
    return int(runs[1::2].sum())


def points_in_rle(
    runs: np.ndarray, height: int, width: int, k: int, rng: np.random.Generator
) -> list[list[float]]:
    """Up to `k` distinct foreground pixels, drawn uniformly in random order (so every prefix
    is itself a uniform sample), as normalised pixel centres [(x + 0.5) / W, (y + 0.5) / H].

    Works on the runs, never on a dense mask; fewer than `k` points when the mask is smaller.
    """
    fg_length = runs[1::2]
    fg_start = (np.cumsum(runs) - runs)[1::2]
    cumulative = np.cumsum(fg_length)
    area = int(cumulative[-1]) if cumulative.size else 0
    if area == 0:
        return []
    ranks = rng.choice(area, size=min(k, area), replace=False)
    run = np.searchsorted(cumulative, ranks, side="right")
    pixel = fg_start[run] + ranks - (cumulative[run] - fg_length[run])
    xs, ys = pixel // height, pixel % height  # column-major
    pairs = zip(xs.tolist(), ys.tolist(), strict=True)
    return [[(x + 0.5) / width, (y + 0.5) / height] for x, y in pairs]

"""What every source shares: work units, item outcomes, fsspec access, sample rows, COCO RLE."""

from __future__ import annotations

import glob
import io
import json
import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import fsspec
import numpy as np
from PIL import Image

from dicepipe.imageio import (
    ImageDecodeError,
    canonical_image_bytes,
    encode_png,
    exif_focal_px,
    exif_orientation,
    rle_runs_from_strings,
)
from dicepipe.records import Args, ItemError, guard
from dicepipe.sampling import pixel_draw


def whole_number(value: Any) -> int | None:
    """`value` as an int when it is a whole number (an int or an integral finite float; never
    a bool), else None: what JSON annotation fields holding counts, ids and sizes must be."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value)


@dataclass(frozen=True)
class Unit:
    """One input shard (an OpenImages index block, one SA-1B tar, a block of a COCO-format
    dataset's images, a range of rendered scenes) with its selected items."""

    source: str  # the dataset: key prefix and `source` column (openimages, coco_rem, ...)
    name: str  # stable, file-name safe, e.g. "openimages-000000", "sa1b-sa_000001"
    location: str  # images root or tar path/URL
    items: tuple[tuple[str, dict[str, Any]], ...] = field(default=())  # (source_id, info)
    tasks: tuple[str, ...] = ()  # the tasks its items' annotations feed (the rows' `tasks`)
    reader: str = ""  # the source module reading it when not `source` (COCO-format datasets)
    annotations: str = ""  # COCO-format: the annotations file its items are streamed from
    annotations_sha256: str = ""  # ... as planned; part of the unit's fingerprint
    index: str = ""  # COCO-format: the folder of the file's index (`coco_index`), if any

    @property
    def module(self) -> str:
        """The name of the source module that reads this unit."""
        return self.reader or self.source


@dataclass(frozen=True)
class Outcome:
    """Where one selected item ended: a sample row, or a quarantine error; plus notes about
    annotations dropped from a row (dicts with key, annotation_id, reason)."""

    key: str
    row: dict[str, Any] | None = None
    error: ItemError | None = None
    notes: tuple[dict[str, Any], ...] = ()


def row_outcome(
    key: str, build_row: Callable[Args, dict[str, Any]], *args: Args.args, **kwargs: Args.kwargs
) -> Outcome:
    """The outcome of item `key`: the row `build_row(*args, **kwargs)` makes, or the
    ItemError that quarantines it (`records.guard`)."""
    result = guard(build_row, *args, **kwargs)
    if isinstance(result, ItemError):
        return Outcome(key, error=result)
    return Outcome(key, row=result)


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


def sample_row(
    source: str,
    source_id: str,
    unit: str,
    origin: str,
    data: bytes,
    annotations: list[dict[str, Any]],
    max_pixels: int,
    rotate_ccw: int = 0,
    *,
    tasks: Sequence[str] = (),
) -> dict[str, Any]:
    """Validate and canonicalise one item's image into a row of `records.SAMPLE_SCHEMA`.

    `rotate_ccw` (a multiple of 90) turns the decoded, EXIF-upright image counterclockwise;
    a turned image is stored as PNG so that every reader sees the same pixels. The EXIF
    focal length is read from the original bytes here (`focal_px`), since a re-encoded image
    has no EXIF left. `tasks` are the tasks the annotations feed (the unit's role).
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
        "focal_px": exif_focal_px(data, width, height),
        "tasks": list(tasks),
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
                orientation = exif_orientation(image)
                if not plain or width * height > max_pixels or orientation != 1:
                    return None
    except Exception:  # noqa: BLE001 - the general path reports what is wrong
        return None
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    return (height, width) if pixels is not None and pixels.shape[:2] == (height, width) else None


def _canonical(data: bytes, max_pixels: int) -> tuple[bytes, np.ndarray]:
    try:
        image_bytes, decoded = canonical_image_bytes(data, max_pixels)
    except ImageDecodeError as error:
        raise ItemError(error.reason, str(error)) from None
    return image_bytes, decoded.rgb


@dataclass(frozen=True)
class Rles:
    """The COCO RLEs of one image as one array of run lengths (RLE i is
    `runs[first[i]:first[i] + size[i]]`), each checked to cover the image exactly. Runs
    alternate background/foreground from background, in column-major pixel order."""

    runs: np.ndarray
    first: np.ndarray
    size: np.ndarray
    height: int
    width: int

    def subset(self, chosen: list[int]) -> Rles:
        """The RLEs `chosen` (indices), in that order."""
        parts = [self.runs[self.first[i] : self.first[i] + self.size[i]] for i in chosen]
        size = self.size[np.asarray(chosen, np.int64)].astype(np.int64)
        runs = np.concatenate([np.zeros(0, np.int64), *parts])
        return Rles(runs, np.cumsum(size) - size, size, self.height, self.width)

    def counts(self, index: int) -> np.ndarray:
        """The run lengths of RLE `index`."""
        return self.runs[self.first[index] : self.first[index] + self.size[index]]

    def _odd(self) -> np.ndarray:
        return (np.arange(self.runs.size) - np.repeat(self.first, self.size)) % 2 == 1

    def areas(self) -> np.ndarray:
        """Foreground pixels of every RLE."""
        return np.add.reduceat(np.where(self._odd(), self.runs, 0), self.first)

    def points(
        self, chosen: list[int], k: int, rngs: list[np.random.Generator]
    ) -> list[list[list[float]]]:
        """For each chosen (non-empty) RLE, `k` foreground pixels drawn with its generator by
        `sampling.pixel_draw` (the rule of `sampling.prompt_points`, over the RLE's column-major
        pixel order, so no mask is decoded), as normalised pixel centres
        [(x + 0.5) / W, (y + 0.5) / H]."""
        odd, areas = self._odd(), self.areas().tolist()
        fg_end, ranked = np.cumsum(self.runs)[odd], np.cumsum(self.runs[odd])
        before = np.cumsum([0, *areas]).tolist()
        draws = [
            before[i] + (pixel_draw(areas[i], k, rng) if areas[i] else np.zeros(0, np.int64))
            for i, rng in zip(chosen, rngs, strict=True)
        ]
        rank = np.concatenate([np.zeros(0, np.int64), *draws])
        owner = np.repeat(np.asarray(chosen, np.int64), [d.size for d in draws])
        run = np.searchsorted(ranked, rank, side="right")  # every RLE spans `pixels` ends
        pixel = fg_end[run] - ranked[run] + rank - owner * (self.height * self.width)
        x, y = np.divmod(pixel, self.height)
        xy = zip(x.tolist(), y.tolist(), strict=True)
        flat = [[(a + 0.5) / self.width, (b + 0.5) / self.height] for a, b in xy]
        bounds = np.cumsum([0] + [d.size for d in draws]).tolist()
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def decode_rles(counts: list[Any], height: int, width: int) -> Rles:
    """Decode the `counts` (compressed strings or lists of ints) of many RLEs of one image;
    one that is malformed or does not cover height x width pixels is ItemError `invalid_rle`."""
    texts = [c.encode() if isinstance(c, str) else c for c in counts]
    if texts and all(isinstance(t, bytes) and t for t in texts):
        runs, size = _decode_rle_strings(texts, height * width)
    else:  # uncompressed counts (rare): one by one
        arrays = [_one_rle(c, i, height * width) for i, c in enumerate(texts)]
        runs = np.concatenate([np.zeros(0, np.int64), *arrays])
        size = np.asarray([a.size for a in arrays], dtype=np.int64)
    return Rles(runs, (np.cumsum(size) - size).astype(np.int64), size, height, width)


def _one_rle(counts: Any, index: int, pixels: int) -> np.ndarray:
    if isinstance(counts, bytes) and counts:
        return _decode_rle_strings([counts], pixels)[0]
    if not isinstance(counts, list) or not all(type(v) is int and v >= 0 for v in counts):
        raise ItemError("invalid_rle", f"RLE {index} has counts {str(counts)[:40]!r}")
    if sum(counts) != pixels:
        raise ItemError("invalid_rle", f"RLE {index} does not cover {pixels} pixels")
    return np.asarray(counts, dtype=np.int64)


def _decode_rle_strings(texts: list[bytes], pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """`imageio.rle_runs_from_strings`, failing with ItemError `invalid_rle`."""
    try:
        return rle_runs_from_strings(texts, pixels)
    except ImageDecodeError as error:
        raise ItemError(error.reason, str(error).split(": ", 1)[-1]) from None


def rle_runs(counts: Any, height: int, width: int) -> np.ndarray:
    """The run lengths of one COCO RLE (see `decode_rles`)."""
    return decode_rles([counts], height, width).runs


def points_in_rle(
    runs: np.ndarray, height: int, width: int, k: int, rng: np.random.Generator
) -> list[list[float]]:
    """`Rles.points` of a single RLE given as runs."""
    rles = Rles(runs, np.zeros(1, np.int64), np.asarray([runs.size]), height, width)
    return rles.points([0], k, [rng])[0]

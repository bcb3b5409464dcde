"""What the depth readers share: opening an archive with its split, building a sample."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np

from dicepipe.evaluate.benchmarks.archive import Archive, check_shape, decode_rgb, read_split
from dicepipe.evaluate.benchmarks.sample import BenchmarkReadError, BenchmarkSample
from dicepipe.metrics.depth_benchmarks import DEPTH_BENCHMARKS


def split_members(
    archive: str | Path, split_file: str | Path, columns: int, limit: int | None
) -> Iterator[tuple[Archive, list[str]]]:
    """(open archive, fields) per split line, at most `limit` lines; the archive is opened on
    the first item and closed when the iteration ends or is abandoned."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    lines = read_split(split_file, columns)
    with Archive(archive) as opened:
        for _, fields in islice(lines, limit):
            yield opened, fields


def read_rgb(archive: Archive, member: str, shape: tuple[int, int] | None) -> np.ndarray:
    """The RGB member as uint8 (H, W, 3), checked against the expected (H, W)."""
    rgb = decode_rgb(archive.read(member), member)
    check_shape(rgb, None if shape is None else (*shape, 3), member, "the image")
    return rgb


def depth_sample(
    benchmark: str,
    name: str,
    rgb: np.ndarray,
    depth_m: np.ndarray,
    depth_member: str,
    *,
    mask: np.ndarray | None = None,
    focal_px: float | None = None,
) -> BenchmarkSample:
    """A sample with depth in metres (0, negative or non-finite -> NaN) and the benchmark's
    valid mask (range, crop, and the dataset's own `mask`)."""
    check_shape(depth_m, rgb.shape[:2], depth_member, "the depth map (vs its image)")
    depth = np.asarray(depth_m, np.float32).copy()
    with np.errstate(invalid="ignore"):
        depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    try:
        valid = DEPTH_BENCHMARKS[benchmark].valid_mask(depth, mask)
    except ValueError as error:
        raise BenchmarkReadError(f"{depth_member}: {error}") from None
    return BenchmarkSample(name, benchmark, rgb, depth, valid, focal_px=focal_px)

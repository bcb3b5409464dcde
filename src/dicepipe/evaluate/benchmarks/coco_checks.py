"""Checks of COCO annotations before pycocotools' native code sees them.

RLE counts strings are parsed here as pycocotools' `rleFrString` does (6-bit groups from
character 48, continuation bit 0x20, sign bit 0x10, counts after the second delta-coded
against the count two before), so that a string whose runs do not cover exactly H * W pixels
is rejected instead of overrunning the decoder's buffer. Polygon coordinates must lie within
POLYGON_MARGIN image sizes of the image (the rasteriser casts them to C ints).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

from dicepipe.evaluate.benchmarks.sample import BenchmarkReadError

POLYGON_MARGIN = 10  # coordinates in [-10 * max(H, W), 10 * max(H, W)]


def check_segmentation(segmentation: Any, size: tuple[int, int], where: str) -> None:
    """A COCO segmentation (polygon list, uncompressed or compressed RLE) that pycocotools
    can decode safely into an image of `size` (H, W); otherwise a BenchmarkReadError."""
    if isinstance(segmentation, list):
        if not segmentation:
            raise BenchmarkReadError(f"{where}: empty polygon list")
        for polygon in segmentation:
            if not (isinstance(polygon, list) and len(polygon) >= 6 and len(polygon) % 2 == 0):
                raise BenchmarkReadError(f"{where}: a polygon needs >= 3 (x, y) points")
            if not all(_finite_number(v) for v in polygon):
                raise BenchmarkReadError(f"{where}: polygon coordinates must be finite numbers")
            if max(abs(v) for v in polygon) > POLYGON_MARGIN * max(size):
                raise BenchmarkReadError(f"{where}: polygon coordinates far outside the image")
        return
    if not isinstance(segmentation, dict):
        raise BenchmarkReadError(f"{where}: segmentation is neither polygons nor RLE")
    if list(segmentation.get("size", ())) != list(size):
        raise BenchmarkReadError(f"{where}: RLE size {segmentation.get('size')} != image {size}")
    counts = segmentation.get("counts")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        runs = rle_string_counts(counts, where)
    elif isinstance(counts, list) and all(isinstance(c, int) for c in counts):
        runs = counts
    else:
        raise BenchmarkReadError(f"{where}: RLE counts must be a string or a list of ints")
    if any(c < 0 for c in runs) or sum(runs) != size[0] * size[1]:
        raise BenchmarkReadError(f"{where}: RLE runs do not cover the {size} image exactly")


def rle_string_counts(counts: str, where: str) -> list[int]:
    """The run lengths encoded in a COCO compressed RLE string."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise BenchmarkReadError(f"{where}: truncated RLE counts string")
            char = ord(counts[position]) - 48
            if not 0 <= char < 64:
                raise BenchmarkReadError(f"{where}: bad character in RLE counts string")
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            position += 1
            shift += 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def check_keypoints(annotation: dict[str, Any], where: str) -> np.ndarray:
    """The annotation's keypoints as a (K, 3) float array of finite (x, y, v), v in 0..2."""
    values = annotation.get("keypoints")
    if not (isinstance(values, list) and values and len(values) % 3 == 0):
        raise BenchmarkReadError(f"{where}: keypoints must be a flat [x, y, v, ...] list")
    if not all(_finite_number(v) for v in values):
        raise BenchmarkReadError(f"{where}: keypoints must be finite numbers")
    points = np.asarray(values, np.float64).reshape(-1, 3)
    if not np.isin(points[:, 2], (0, 1, 2)).all():
        raise BenchmarkReadError(f"{where}: keypoint visibility must be 0, 1 or 2")
    box = annotation.get("bbox", [0, 0, 0, 0])
    if not (isinstance(box, list) and len(box) == 4 and all(_finite_number(v) for v in box)):
        raise BenchmarkReadError(f"{where}: bbox must be 4 finite numbers")
    return points


def _finite_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)

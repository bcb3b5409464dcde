"""KITTI Eigen test split in Marigold's layout (`kitti/kitti_eigen_split_test.tar`).

Split file `data_split/kitti_depth/eigen_test_files_with_gt.txt`: lines
"<date>/<drive>/image_02/data/<id>.png <drive>/proj_depth/groundtruth/image_02/<id>.png
<focal>"; lines whose depth is "None" are skipped, as Marigold does. RGB PNG and 16-bit
depth PNG / 256 in metres (Marigold `KITTIDepthDataset`); both cut to the KITTI benchmark
crop (352 x 1216) unless `benchmark_crop=False`; the Eigen (default) or Garg crop applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from dicepipe.evaluate.benchmarks.archive import decode_depth_png
from dicepipe.evaluate.benchmarks.depth_common import depth_sample, read_rgb, split_members
from dicepipe.evaluate.benchmarks.sample import BenchmarkReadError, BenchmarkSample
from dicepipe.metrics.depth_benchmarks import kitti_benchmark_crop

KITTI_DEPTH_SCALE = 256.0


def read_kitti(
    archive: str | Path,
    split_file: str | Path,
    *,
    limit: int | None = None,
    crop: Literal["kitti", "kitti_garg"] = "kitti",
    benchmark_crop: bool = True,
) -> Iterator[BenchmarkSample]:
    """Lazily yield KITTI samples (benchmark `crop`: "kitti" = Eigen crop, or "kitti_garg")
    with their focal length, from the tar or folder `archive`, read in place."""
    for opened, fields in split_members(archive, split_file, 2, limit):
        rgb_member, depth_member = fields[:2]
        if depth_member == "None":
            continue
        rgb = read_rgb(opened, rgb_member, None)
        depth = decode_depth_png(opened.read(depth_member), depth_member) / KITTI_DEPTH_SCALE
        if benchmark_crop:
            try:
                rgb, depth = kitti_benchmark_crop(rgb), kitti_benchmark_crop(depth)
            except ValueError as error:
                raise BenchmarkReadError(f"{rgb_member}: {error}") from None
        focal = _focal(fields, rgb_member)
        yield depth_sample(crop, rgb_member, rgb, depth, depth_member, focal_px=focal)


def _focal(fields: list[str], member: str) -> float | None:
    if len(fields) < 3:
        return None
    try:
        return float(fields[2])
    except ValueError:
        raise BenchmarkReadError(f"{member}: bad focal length {fields[2]!r}") from None

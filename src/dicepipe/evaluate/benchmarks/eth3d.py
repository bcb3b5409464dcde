"""ETH3D high-resolution multi-view DSLR images in Marigold's layout (`eth3d/eth3d.tar`).

Split file `data_split/eth3d_depth/eth3d_filename_list.txt`: lines
"rgb/<scene>/images/dslr_images/<x>.JPG
depth/<scene>_dslr_depth/<scene>/ground_truth_depth/dslr_images/<x>.JPG"; the depth member,
despite its name, is raw little-endian float32 of the image's size (4032 x 6048), infinity
where nothing was measured (ETH3D's format; Marigold `ETH3DDepthDataset`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dicepipe.evaluate.benchmarks.depth_common import depth_sample, read_rgb, split_members
from dicepipe.evaluate.benchmarks.sample import BenchmarkReadError, BenchmarkSample

ETH3D_SHAPE = (4032, 6048)


def read_eth3d(
    archive: str | Path,
    split_file: str | Path,
    *,
    limit: int | None = None,
    expected_shape: tuple[int, int] | None = ETH3D_SHAPE,
) -> Iterator[BenchmarkSample]:
    """Lazily yield ETH3D samples (benchmark "eth3d") from the tar or folder `archive`."""
    for opened, (rgb_member, depth_member, *_) in split_members(archive, split_file, 2, limit):
        rgb = read_rgb(opened, rgb_member, expected_shape)
        depth = decode_float32_depth(opened.read(depth_member), rgb.shape[:2], depth_member)
        yield depth_sample("eth3d", rgb_member, rgb, depth, depth_member)


def decode_float32_depth(data: bytes, shape: tuple[int, int], member: str) -> np.ndarray:
    """ETH3D's raw depth: H * W little-endian float32 values, row-major."""
    expected = shape[0] * shape[1] * 4
    if len(data) != expected:
        raise BenchmarkReadError(
            f"{member}: {len(data)} bytes, expected {expected} for {shape[0]} x {shape[1]} "
            "float32 depth"
        )
    return np.frombuffer(data, "<f4").reshape(shape)

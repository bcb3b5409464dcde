"""DIODE validation split in Marigold's layout (`diode/diode_val.tar`).

Split file `data_split/diode_depth/diode_val_all_filename_list.txt` (or the indoor / outdoor
lists): lines "<x>.png <x>_depth.npy <x>_depth_mask.npy" under indoors/ or outdoor/; RGB PNG,
float32 depth (H, W, 1) in metres and its validity mask (H, W), 768 x 1024 (Marigold
`DIODEDepthDataset`). Scored: the mask, intersected with the (0.6, 350) m range.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dicepipe.evaluate.benchmarks.archive import check_shape, decode_npy
from dicepipe.evaluate.benchmarks.depth_common import depth_sample, read_rgb, split_members
from dicepipe.evaluate.benchmarks.sample import BenchmarkReadError, BenchmarkSample

DIODE_SHAPE = (768, 1024)


def read_diode(
    archive: str | Path,
    split_file: str | Path,
    *,
    limit: int | None = None,
    expected_shape: tuple[int, int] | None = DIODE_SHAPE,
) -> Iterator[BenchmarkSample]:
    """Lazily yield DIODE samples (benchmark "diode") from the tar or folder `archive`."""
    for opened, fields in split_members(archive, split_file, 3, limit):
        rgb_member, depth_member, mask_member = fields[:3]
        rgb = read_rgb(opened, rgb_member, expected_shape)
        depth = _squeezed(decode_npy(opened.read(depth_member), depth_member), depth_member)
        mask = _squeezed(decode_npy(opened.read(mask_member), mask_member), mask_member)
        check_shape(mask, rgb.shape[:2], mask_member, "the mask (vs its image)")
        if not (np.issubdtype(depth.dtype, np.floating) or np.issubdtype(depth.dtype, np.integer)):
            raise BenchmarkReadError(f"{depth_member}: depth must be numeric, got {depth.dtype}")
        yield depth_sample("diode", rgb_member, rgb, depth, depth_member, mask=mask.astype(bool))


def _squeezed(array: np.ndarray, member: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        shape = array.shape
        raise BenchmarkReadError(f"{member}: expected an (H, W) or (H, W, 1) array, got {shape}")
    return array

"""NYUv2 labeled test split in Marigold's layout (`nyuv2/nyu_labeled_extracted.tar`).

Split file `data_split/nyu_depth/labeled/filename_list_test.txt`: lines
"test/<scene>/rgb_<id>.png test/<scene>/depth_<id>.png test/<scene>/filled_<id>.png"; RGB
PNG and 16-bit depth PNG in millimetres (Marigold `NYUDepthDataset`: depth / 1000), 480 x 640.
The raw depth is scored (the filled one is not read); the Eigen crop applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dicepipe.evaluate.benchmarks.archive import decode_depth_png
from dicepipe.evaluate.benchmarks.depth_common import depth_sample, read_rgb, split_members
from dicepipe.evaluate.benchmarks.sample import BenchmarkSample

NYU_SHAPE = (480, 640)
MILLIMETRES = 1000.0


def read_nyuv2(
    archive: str | Path,
    split_file: str | Path,
    *,
    limit: int | None = None,
    expected_shape: tuple[int, int] | None = NYU_SHAPE,
) -> Iterator[BenchmarkSample]:
    """Lazily yield NYUv2 samples (benchmark "nyuv2") listed in `split_file` from the tar or
    folder `archive`, read in place."""
    for opened, (rgb_member, depth_member, *_) in split_members(archive, split_file, 2, limit):
        rgb = read_rgb(opened, rgb_member, expected_shape)
        raw = decode_depth_png(opened.read(depth_member), depth_member)
        yield depth_sample("nyuv2", rgb_member, rgb, raw / MILLIMETRES, depth_member)

"""ScanNet validation sample in Marigold's layout (`scannet/scannet_val_sampled_800_1.tar`).

Split file `data_split/scannet_depth/scannet_val_sampled_list_800_1.txt`: lines
"<scene>/color/<id>.jpg <scene>/depth/<id>.png"; JPEG RGB and 16-bit depth PNG in
millimetres (Marigold `ScanNetDepthDataset`: depth / 1000); no crop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dicepipe.evaluate.benchmarks.archive import decode_depth_png
from dicepipe.evaluate.benchmarks.depth_common import depth_sample, read_rgb, split_members
from dicepipe.evaluate.benchmarks.sample import BenchmarkSample

MILLIMETRES = 1000.0


def read_scannet(
    archive: str | Path,
    split_file: str | Path,
    *,
    limit: int | None = None,
    expected_shape: tuple[int, int] | None = None,
) -> Iterator[BenchmarkSample]:
    """Lazily yield ScanNet samples (benchmark "scannet") from the tar or folder `archive`."""
    for opened, (rgb_member, depth_member, *_) in split_members(archive, split_file, 2, limit):
        rgb = read_rgb(opened, rgb_member, expected_shape)
        raw = decode_depth_png(opened.read(depth_member), depth_member)
        yield depth_sample("scannet", rgb_member, rgb, raw / MILLIMETRES, depth_member)

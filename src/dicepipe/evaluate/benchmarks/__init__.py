"""Readers of public benchmark archives, read in place (folder, tar or zip), yielding
`BenchmarkSample`s lazily from Marigold-style split files (COCO: from its JSON)."""

from dicepipe.evaluate.benchmarks.archive import Archive, read_split
from dicepipe.evaluate.benchmarks.coco import load_coco_json, read_coco
from dicepipe.evaluate.benchmarks.diode import read_diode
from dicepipe.evaluate.benchmarks.eth3d import read_eth3d
from dicepipe.evaluate.benchmarks.kitti import read_kitti
from dicepipe.evaluate.benchmarks.nyuv2 import read_nyuv2
from dicepipe.evaluate.benchmarks.sample import (
    BenchmarkReadError,
    BenchmarkSample,
    Instances,
    People,
)
from dicepipe.evaluate.benchmarks.scannet import read_scannet

__all__ = [
    "Archive",
    "BenchmarkReadError",
    "BenchmarkSample",
    "Instances",
    "People",
    "load_coco_json",
    "read_coco",
    "read_diode",
    "read_eth3d",
    "read_kitti",
    "read_nyuv2",
    "read_scannet",
    "read_split",
]

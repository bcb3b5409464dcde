"""Reading members in place from folders, tars and zips; split files; decoding errors."""

import numpy as np
import pytest

from dicepipe.evaluate.benchmarks.archive import (
    Archive,
    decode_depth_png,
    decode_npy,
    decode_rgb,
    read_split,
)
from dicepipe.evaluate.benchmarks.sample import BenchmarkReadError
from tests.evaluate.fixtures import png_bytes, write_archive, write_split

MEMBERS = {"a/b.txt": b"hello", "c.bin": b"\x00\x01"}


@pytest.mark.parametrize(
    ("kind", "dot"), [("folder", True), ("tar", True), ("tar", False), ("zip", True)]
)
def test_members_are_read_in_place(tmp_path, kind, dot):
    path = write_archive(tmp_path / "data", MEMBERS, kind, dot_prefix=dot)
    with Archive(path) as archive:
        assert archive.read("a/b.txt") == b"hello"
        assert archive.read("./c.bin") == b"\x00\x01"
        with pytest.raises(BenchmarkReadError, match="a/missing.png"):
            archive.read("a/missing.png")
        with pytest.raises(BenchmarkReadError, match="bad member path"):
            archive.read("../outside")


def test_not_an_archive(tmp_path):
    (tmp_path / "x.txt").write_text("plain")
    with pytest.raises(BenchmarkReadError, match="not a folder, tar or zip"):
        Archive(tmp_path / "x.txt")
    with pytest.raises(BenchmarkReadError, match="no such"):
        Archive(tmp_path / "absent.tar")


def test_split_file(tmp_path):
    split = write_split(tmp_path / "split.txt", ["a.png b.png", "", "c.png d.png 7.5"])
    assert list(read_split(split, 2)) == [(1, ["a.png", "b.png"]), (3, ["c.png", "d.png", "7.5"])]
    with pytest.raises(BenchmarkReadError, match=r"split.txt:1: expected 3 fields"):
        list(read_split(split, 3))


def test_decoders_name_the_member():
    with pytest.raises(BenchmarkReadError, match="x/rgb.png: not a readable image"):
        decode_rgb(b"not a png", "x/rgb.png")
    eight_bit = png_bytes(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(BenchmarkReadError, match="x/depth.png: not a 16-bit"):
        decode_depth_png(eight_bit, "x/depth.png")
    with pytest.raises(BenchmarkReadError, match="x/d.npy"):
        decode_npy(b"junk", "x/d.npy")
    depth = np.array([[0, 1000], [65535, 3]], np.uint16)
    np.testing.assert_array_equal(decode_depth_png(png_bytes(depth), "d.png"), depth)

"""Depth benchmark readers on tiny archives in Marigold's layouts."""

import numpy as np
import pytest

from dicepipe.evaluate.benchmarks import (
    BenchmarkReadError,
    read_diode,
    read_eth3d,
    read_kitti,
    read_nyuv2,
    read_scannet,
)
from dicepipe.metrics.depth_benchmarks import benchmark_depth_metrics
from tests.evaluate.fixtures import (
    gradient_rgb,
    jpg_bytes,
    npy_bytes,
    png_bytes,
    write_archive,
    write_split,
)


def _millimetres(shape, value_mm, seed):
    depth = np.full(shape, value_mm, np.uint16)
    depth[seed, 50:55] = 0  # missing measurements
    return depth


def test_nyuv2_tar_millimetres_to_metres_with_eigen_crop(tmp_path):
    members, lines = {}, []
    for i, mm in enumerate((2500, 9999), start=1):
        scene = f"test/kitchen_000{i}"
        members[f"{scene}/rgb_000{i}.png"] = png_bytes(gradient_rgb(480, 640, i))
        members[f"{scene}/depth_000{i}.png"] = png_bytes(_millimetres((480, 640), mm, 60 + i))
        members[f"{scene}/filled_000{i}.png"] = png_bytes(np.full((480, 640), mm, np.uint16))
        lines.append(f"{scene}/rgb_000{i}.png {scene}/depth_000{i}.png {scene}/filled_000{i}.png")
    tar = write_archive(tmp_path / "nyu_labeled_extracted", members, "tar")
    split = write_split(tmp_path / "filename_list_test.txt", lines)

    samples = list(read_nyuv2(tar, split))
    assert [s.name for s in samples] == [
        "test/kitchen_0001/rgb_0001.png",
        "test/kitchen_0002/rgb_0002.png",
    ]
    first = samples[0]
    assert first.benchmark == "nyuv2" and first.depth.dtype == np.float32
    assert first.depth[100, 100] == pytest.approx(2.5) and np.isnan(first.depth[61, 50])
    np.testing.assert_array_equal(first.rgb, gradient_rgb(480, 640, 1))
    assert not first.valid[0, 0] and not first.valid[61, 50] and first.valid[100, 100]
    assert first.valid.sum() == 426 * 560 - 5  # the Eigen crop less the missing pixels
    assert samples[1].depth[100, 100] == pytest.approx(9.999)
    metrics = benchmark_depth_metrics(
        [s.depth for s in samples], [s.depth for s in samples], "nyuv2", [s.valid for s in samples]
    )
    assert metrics["absrel"] == pytest.approx(0.0, abs=1e-6)
    assert len(list(read_nyuv2(tar, split, limit=1))) == 1


def test_nyuv2_wrong_size_and_missing_member(tmp_path):
    members = {
        "test/s/rgb_1.png": png_bytes(gradient_rgb(48, 64)),
        "test/s/depth_1.png": png_bytes(np.ones((48, 64), np.uint16)),
    }
    tar = write_archive(tmp_path / "nyu", members, "tar")
    split = write_split(tmp_path / "split.txt", ["test/s/rgb_1.png test/s/depth_1.png x.png"])
    with pytest.raises(BenchmarkReadError, match=r"test/s/rgb_1.png: the image has shape"):
        next(read_nyuv2(tar, split))
    split = write_split(tmp_path / "split2.txt", ["test/s/rgb_1.png test/s/depth_9.png"])
    with pytest.raises(BenchmarkReadError, match="no member 'test/s/depth_9.png'"):
        next(read_nyuv2(tar, split, expected_shape=(48, 64)))
    lazy = read_nyuv2(tmp_path / "absent.tar", split)  # nothing is opened until iterated
    with pytest.raises(BenchmarkReadError, match="absent.tar"):
        next(lazy)


def test_kitti_depth_over_256_benchmark_crop_and_focal(tmp_path):
    members, lines = {}, []
    for i in range(2):
        rgb = f"2011_09_26/2011_09_26_drive_0002_sync/image_02/data/000000006{i}.png"
        depth_name = f"2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/000000006{i}.png"
        depth = np.zeros((375, 1242), np.uint16)
        depth[200:, :] = 256 * (10 + i) + 128  # lidar rows only in the lower part
        members[rgb] = png_bytes(gradient_rgb(375, 1242, i))
        members[depth_name] = png_bytes(depth)
        lines.append(f"{rgb} {depth_name} 721.5377")
    lines.insert(1, "2011_09_26/x/image_02/data/0000000099.png None 721.5377")
    tar = write_archive(tmp_path / "kitti_eigen_split_test", members, "tar", dot_prefix=False)
    samples = list(read_kitti(tar, write_split(tmp_path / "eigen_test.txt", lines)))
    assert len(samples) == 2 and samples[0].rgb.shape == (352, 1216, 3)
    assert samples[0].benchmark == "kitti" and samples[0].focal_px == pytest.approx(721.5377)
    assert samples[1].depth[300, 600] == pytest.approx(11.5)  # (256 * 11 + 128) / 256
    np.testing.assert_array_equal(samples[0].rgb, gradient_rgb(375, 1242, 0)[23:, 13:1229])
    assert np.isnan(samples[0].depth[0, 0]) and not samples[0].valid[300, 0]  # Eigen crop
    assert samples[0].valid[300, 600] and not samples[0].valid[330, 600]  # row 330 >= 321
    garg = next(read_kitti(tar, write_split(tmp_path / "s.txt", lines[:1]), crop="kitti_garg"))
    assert garg.benchmark == "kitti_garg" and garg.valid[330, 600]


def test_scannet_folder_jpg_and_millimetre_png(tmp_path):
    members, lines = {}, []
    for scene, mm in (("scene0406_02", 1234), ("scene0088_02", 4321)):
        members[f"{scene}/color/000300.jpg"] = jpg_bytes(gradient_rgb(48, 64))
        members[f"{scene}/depth/000300.png"] = png_bytes(_millimetres((48, 64), mm, 3))
        lines.append(f"{scene}/color/000300.jpg {scene}/depth/000300.png")
    root = write_archive(tmp_path / "scannet", members, "folder")
    samples = list(read_scannet(root, write_split(tmp_path / "list.txt", lines)))
    assert [s.depth[10, 10] for s in samples] == pytest.approx([1.234, 4.321])
    assert samples[0].valid.sum() == 48 * 64 - 5  # no crop: only the missing pixels
    assert np.abs(samples[0].rgb.astype(int) - gradient_rgb(48, 64)).max() <= 8  # JPEG


def test_diode_npy_depth_and_mask(tmp_path):
    members, lines = {}, []
    names = (
        "indoors/scene_00021/scan_00189/00021_00189_indoors_200_010",
        "outdoor/scene_00022/scan_00196/00022_00196_outdoor_350_020",
    )
    for i, name in enumerate(names):
        depth = np.full((24, 32, 1), 5.0 + 100 * i, np.float32)
        depth[0, 0, 0] = 0.3  # below DIODE's 0.6 m minimum
        mask = np.ones((24, 32), np.float32)
        mask[5, 5] = 0.0
        members[f"{name}.png"] = png_bytes(gradient_rgb(24, 32, i))
        members[f"{name}_depth.npy"] = npy_bytes(depth)
        members[f"{name}_depth_mask.npy"] = npy_bytes(mask)
        lines.append(f"{name}.png {name}_depth.npy {name}_depth_mask.npy")
    tar = write_archive(tmp_path / "diode_val", members, "tar")
    split = write_split(tmp_path / "diode_val_all_filename_list.txt", lines)
    samples = list(read_diode(tar, split, expected_shape=(24, 32)))
    assert samples[1].depth.shape == (24, 32) and samples[1].depth[3, 3] == pytest.approx(105.0)
    assert samples[0].valid.sum() == 24 * 32 - 2 and not samples[0].valid[5, 5]
    with pytest.raises(BenchmarkReadError, match=r"\.png: the image has shape \(24, 32, 3\)"):
        next(read_diode(tar, split))  # DIODE images are 768 x 1024


def test_eth3d_raw_float32_depth(tmp_path):
    members, lines = {}, []
    for i in range(2):
        depth = np.full((30, 40), 3.0 + i, "<f4")
        depth[:2] = np.inf  # not measured
        rgb = f"rgb/office/images/dslr_images/DSC_02{i}.JPG"
        depth_name = f"depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_02{i}.JPG"
        members[rgb] = jpg_bytes(gradient_rgb(30, 40))
        members[depth_name] = depth.tobytes()
        lines.append(f"{rgb} {depth_name}")
    tar = write_archive(tmp_path / "eth3d", members, "tar")
    split = write_split(tmp_path / "eth3d_filename_list.txt", lines)
    samples = list(read_eth3d(tar, split, expected_shape=(30, 40)))
    assert samples[1].depth[10, 10] == pytest.approx(4.0) and np.isnan(samples[1].depth[0, 0])
    assert samples[0].valid.sum() == 28 * 40 and samples[0].benchmark == "eth3d"
    members[lines[0].split()[1]] = b"\x00" * 12  # truncated
    tar = write_archive(tmp_path / "eth3d_bad", members, "tar")
    with pytest.raises(BenchmarkReadError, match="DSC_020.JPG: 12 bytes, expected 4800"):
        next(read_eth3d(tar, split, expected_shape=(30, 40)))

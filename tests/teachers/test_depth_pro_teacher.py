"""Depth Pro teacher: tiny random-weight checkpoint loaded through from_pretrained(local_dir)."""

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dicepipe.records import ItemError
from dicepipe.teachers.base import TeacherInput
from dicepipe.teachers.depth_pro import (
    DepthProTeacher,
    depth_pro_config,
    depth_pro_input_size,
    focal_from_fov,
    inverse_depth_to_depth,
    preprocess_images,
    save_random_depth_pro,
)
from dicepipe.teachers.stream import StreamItem, exif_focal_px, label_stream

SIZES = [(60, 80), (100, 50), (128, 128), (33, 47), (64, 64)]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_random_depth_pro(tmp_path_factory.mktemp("depth_pro") / "tiny", seed=0)


@pytest.fixture(scope="module")
def teacher(tiny_dir):
    return DepthProTeacher(tiny_dir, device="cpu", batch_size=5)


def _inputs(seed=0, focal=None):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]
    return [TeacherInput(f"k{i}", "test", str(i), im, focal) for i, im in enumerate(images)]


def test_input_size_from_config():
    assert depth_pro_input_size(depth_pro_config("tiny")) == 128
    assert depth_pro_input_size(depth_pro_config("full")) == 1536


def test_batched_equals_one_by_one(teacher):
    inputs = _inputs()
    batched = teacher.label(inputs)
    single = [teacher.label([item])[0] for item in inputs]
    for item, a, b in zip(inputs, batched, single, strict=True):
        assert a.key == item.key and a.depth.shape == item.image.shape[:2]
        assert a.depth.dtype == np.float32 and a.normals is None
        # batched float32 GEMMs round differently from single ones (measured up to 1.0e-3)
        np.testing.assert_allclose(a.depth, b.depth, rtol=5e-3)
        assert a.focal_px == pytest.approx(b.focal_px, rel=1e-4)
        assert np.all(a.depth >= 1e-4) and np.all(a.depth <= 1e4)


def test_identity_names_weights_dtype_and_focal_source(teacher, tiny_dir):
    name, digest, dtype, focal = teacher.identity.split(":")
    assert (name, dtype, focal) == ("depth_pro", "fp32", "exif") and len(digest) == 12
    assert DepthProTeacher(tiny_dir, device="cpu", use_exif_focal=False).identity.endswith(":fov")


def test_known_focal_replaces_fov_estimate(teacher):
    labels = teacher.label(_inputs(focal=100.0))
    assert all(label.focal_px == 100.0 for label in labels)


def test_focal_from_fov_by_hand():
    focal = focal_from_fov(torch.tensor([90.0, 60.0]), torch.tensor([100.0, 200.0]))
    np.testing.assert_allclose(focal.numpy(), [50.0, 100.0 / math.tan(math.radians(30))], rtol=1e-6)


def test_inverse_depth_formula_by_hand():
    inverse = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[2.0, 2.0], [2.0, 2.0]], [[0.0] * 2] * 2])
    focal = torch.tensor([50.0, 173.20508, 10.0])
    depths = inverse_depth_to_depth(inverse, focal, [(3, 100), (2, 200), (2, 2)])
    assert depths[0].shape == (3, 100)
    np.testing.assert_allclose(depths[0].numpy(), 1.0, rtol=1e-6)  # 1 / (0.5 * 100 / 50)
    np.testing.assert_allclose(depths[1].numpy(), 173.20508 / 400.0, rtol=1e-6)
    np.testing.assert_allclose(depths[2].numpy(), 1e4)  # inverse depth clamped at 1e-4


def test_preprocess_normalises_and_resizes():
    image = torch.full((10, 20, 3), 255, dtype=torch.uint8)
    image[:, :10] = 0
    pixels = preprocess_images([image], 8)
    assert pixels.shape == (1, 3, 8, 8)
    assert pixels[0, :, :, 0].eq(-1).all() and pixels[0, :, :, -1].eq(1).all()
    with pytest.raises(ValueError, match="uint8"):
        preprocess_images([image.float()], 8)


def test_bad_known_focal_is_an_error(teacher):
    with pytest.raises(ItemError, match="not > 0") as info:
        teacher.label(_inputs(focal=-3.0)[:1])
    assert info.value.reason == "invalid_focal"


def _jpeg(image, f35=None):
    exif = Image.Exif()
    if f35 is not None:
        exif.get_ifd(0x8769)[0xA405] = f35
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_exif_focal_uses_35mm_equivalent():
    data = _jpeg(np.zeros((30, 40, 3), np.uint8), f35=26)
    assert exif_focal_px(data, 40, 30) == pytest.approx(26 * 50 / math.hypot(36, 24))
    assert exif_focal_px(_jpeg(np.zeros((30, 40, 3), np.uint8)), 40, 30) is None


def test_stream_keeps_order_quarantines_bad_items_and_reads_exif(teacher):
    images = [item.image for item in _inputs(seed=1)]
    items = [StreamItem(f"k{i}", _jpeg(im, 30 if i == 1 else None)) for i, im in enumerate(images)]
    items.insert(2, StreamItem("broken", b"not an image"))
    items.append(("tuple-item", _jpeg(images[0])))
    results = list(label_stream(teacher, iter(items), batch_size=2, num_workers=2))
    keys = [item.key if isinstance(item, StreamItem) else item[0] for item in items]
    assert [r.key for r in results] == keys
    broken = results[2]
    assert broken.label is None and broken.error.reason == "not_an_image"
    good = [r for r in results if r.key != "broken"]
    assert all(r.error is None for r in good)
    assert good[1].label.focal_px == pytest.approx(30 * math.hypot(100, 50) / math.hypot(36, 24))
    decoded = np.asarray(Image.open(io.BytesIO(items[0].data)))
    direct = teacher.label([TeacherInput("k0", "", "", decoded)])
    np.testing.assert_allclose(good[0].label.depth, direct[0].depth, rtol=5e-3)

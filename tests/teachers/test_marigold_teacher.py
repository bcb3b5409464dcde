"""Marigold normals teacher on a tiny random-weight pipeline loaded from a local folder."""

import numpy as np
import pytest
import torch

from dicepipe.teachers.base import Label, TeacherInput
from dicepipe.teachers.marigold import (
    MarigoldNormalsTeacher,
    latent_seed,
    marigold_to_dicepipe,
    save_random_marigold,
)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_random_marigold(tmp_path_factory.mktemp("marigold") / "tiny", seed=0)


def _inputs():
    rng = np.random.default_rng(0)
    shapes = [(40, 30), (24, 48), (40, 30)]
    images = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]
    focals = [None, 55.0, None]
    pairs = enumerate(zip(images, focals, strict=True))
    return [TeacherInput(f"k{i}", "s", str(i), im, f) for i, (im, f) in pairs]


def test_unit_normals_of_input_size_without_depth_teacher(tiny_dir):
    teacher = MarigoldNormalsTeacher(tiny_dir, device="cpu", batch_size=2, ensemble_size=2)
    inputs = _inputs()
    labels = teacher.label(inputs)
    for item, label in zip(inputs, labels, strict=True):
        assert label.key == item.key and label.normals.shape == (*item.image.shape[:2], 3)
        assert label.normals.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(label.normals, axis=-1), 1.0, atol=1e-4)
        assert np.isnan(label.depth).all() and label.depth.shape == item.image.shape[:2]
    assert np.isnan(labels[0].focal_px) and labels[1].focal_px == 55.0
    assert teacher.identity.startswith("normals_marigold:")
    assert "steps=2,ens=2,res=32,seed=0" in teacher.identity


def test_labels_do_not_depend_on_batch_company(tiny_dir):
    teacher = MarigoldNormalsTeacher(tiny_dir, device="cpu", batch_size=4)
    inputs = _inputs()
    together = teacher.label(inputs)
    alone = teacher.label([inputs[2]])
    np.testing.assert_allclose(alone[0].normals, together[2].normals, atol=1e-4)
    assert latent_seed(0, "k2", 0) != latent_seed(1, "k2", 0) != latent_seed(0, "k2", 1)


class _ConstantDepth:
    identity = "const"

    def label(self, batch):
        return [Label(i.key, np.ones(i.image.shape[:2], np.float32), 7.0, None, "c") for i in batch]


def test_depth_teacher_supplies_depth_and_focal(tiny_dir):
    teacher = MarigoldNormalsTeacher(tiny_dir, device="cpu", depth_teacher=_ConstantDepth())
    labels = teacher.label(_inputs())
    assert all(lab.focal_px == 7.0 and np.all(lab.depth == 1.0) for lab in labels)
    assert teacher.identity.startswith("const+normals_marigold:")


def test_marigold_frame_is_dicepipe_frame():
    # Marigold: X right, Y up, Z toward the viewer (diffusers visualize_normals) = dicepipe
    hwc = np.array([[[0.6, 0.0, 0.8], [0.0, -1.0, 0.0]]], np.float32)[None]  # (1, 1, 2, 3)
    out = marigold_to_dicepipe(torch.from_numpy(hwc).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(out, hwc)

"""Geometry normals against exact normals of analytic planes and of the synthetic renderer."""

import numpy as np
import pytest
import torch

from dicepipe.metrics.normals import angular_errors_deg, normal_metrics
from dicepipe.teachers.base import Label, TeacherInput
from dicepipe.teachers.geometry import normals_from_depth, unproject
from dicepipe.teachers.normals import GeometryNormalsTeacher

H, W, F = 48, 64, 60.0


def _rays(height=H, width=W, focal=F):
    """Camera-frame rays with z = -1 (so the ray parameter is z-depth)."""
    u = (np.arange(width) + 0.5 - width / 2) / focal
    v = -(np.arange(height) + 0.5 - height / 2) / focal
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu, vv, -np.ones_like(uu)], axis=-1)


def plane_depth(normal, offset, height=H, width=W, focal=F):
    """z-depth of the plane {X : n . X = offset}; inf where the ray misses it."""
    n = np.asarray(normal, np.float64) / np.linalg.norm(normal)
    along = _rays(height, width, focal) @ n
    with np.errstate(divide="ignore"):
        depth = offset / along
    return np.where(depth > 0, depth, np.inf), n


def _normals(depth, focal=F, **kwargs):
    tensor = torch.from_numpy(np.asarray(depth, np.float32))[None]
    return normals_from_depth(tensor, torch.tensor([focal]), **kwargs)[0].numpy()


def test_unproject_puts_points_on_their_rays():
    depth = torch.full((1, 2, 2), 2.0)
    points = unproject(depth, torch.tensor([1.0]))[0]
    np.testing.assert_allclose(points[0, 0].numpy(), [-1.0, 1.0, -2.0])  # pixel centre (0.5, 0.5)
    np.testing.assert_allclose(points[1, 1].numpy(), [1.0, -1.0, -2.0])


def test_tilted_plane_normals_are_exact_and_face_the_camera():
    depth, normal = plane_depth([0.3, -0.2, 0.9], -3.0)  # n . X = -3: in front, facing us
    normals = _normals(depth)
    errors = angular_errors_deg(normals[2:-2, 2:-2], np.broadcast_to(normal, (H - 4, W - 4, 3)))
    assert errors.size == (H - 4) * (W - 4)
    assert np.median(errors) < 3.0 and errors.max() < 0.1
    assert np.all(normals[..., 2] > 0)


def test_floor_normals_point_up_and_sky_is_nan():
    depth, _ = plane_depth([0.0, 1.0, 0.0], -1.5)  # floor 1.5 below the camera
    normals = _normals(depth, max_relative_jump=0.2)
    floor = np.isfinite(depth)
    floor[: H // 2 + 3] = False  # rows near the horizon are steep; keep clear of them
    errors = angular_errors_deg(normals[floor], np.broadcast_to([0.0, 1.0, 0.0], (floor.sum(), 3)))
    assert np.median(errors) < 3.0 and errors.max() < 0.5
    assert np.isnan(normals[: H // 2]).all()


def test_occlusion_edge_is_nan_and_both_sides_are_exact():
    depth = np.full((H, W), 5.0, np.float32)
    depth[12:36, 16:48] = 2.0  # a frontal card in front of a frontal wall
    normals = _normals(depth)
    edge = np.isnan(normals[..., 0])
    assert edge[12, 30] and edge[11, 30] and edge[20, 16] and edge[20, 15]
    assert not edge[24, 32] and not edge[2, 2]
    inside = normals[~edge]
    np.testing.assert_allclose(inside, np.broadcast_to([0, 0, 1], inside.shape), atol=1e-5)


def test_invalid_depth_and_bad_params():
    depth = np.full((8, 8), 2.0, np.float32)
    depth[4, 4] = 0.0
    assert np.isnan(_normals(depth)[4, 4]).all()
    with pytest.raises(ValueError, match="focal"):
        _normals(depth, focal=-1.0)
    with pytest.raises(ValueError, match="step"):
        _normals(depth, step=0)


def test_renderer_scenes_match_away_from_edges():
    from dicepipe.sources.synthetic.render import render_scene

    for seed in (0, 1):
        scene = render_scene(seed, 96, 72)
        normals = _normals(scene.depth, focal=scene.focal_px)
        metrics = normal_metrics(normals, scene.normals)
        assert metrics["median"] < 3.0 and metrics["pct_11_25"] > 90.0
        assert metrics["n_pixels"] > 0.75 * 96 * 72


class _ExactDepth:
    identity = "exact"

    def __init__(self, depths):
        self.depths = depths

    def label(self, batch):
        return [Label(item.key, self.depths[item.key], F, None, "exact") for item in batch]


def test_geometry_teacher_adds_normals_in_order():
    tilted, normal = plane_depth([0.3, -0.2, 0.9], -3.0)
    small, _ = plane_depth([0.0, 0.0, 1.0], -2.0, height=20, width=30)
    depths = {"a": tilted.astype(np.float32), "b": small.astype(np.float32), "c": tilted}
    teacher = GeometryNormalsTeacher(_ExactDepth(depths), device="cpu")
    image = np.zeros((H, W, 3), np.uint8)
    batch = [TeacherInput(k, "s", k, image if k != "b" else image[:20, :30]) for k in "abc"]
    labels = teacher.label(batch)
    assert [lab.key for lab in labels] == ["a", "b", "c"]
    assert labels[0].teacher == "exact+normals_geometry:jump=0.05,step=1"
    assert labels[1].normals.shape == (20, 30, 3)
    frontal = np.broadcast_to([0, 0, 1.0], (20, 30, 3))
    np.testing.assert_allclose(labels[1].normals, frontal, atol=1e-5)
    exact = np.broadcast_to(normal, (H, W, 3))
    assert np.median(angular_errors_deg(labels[0].normals, exact)) < 0.1
    np.testing.assert_array_equal(labels[2].normals, labels[0].normals)

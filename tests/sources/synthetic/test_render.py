"""Tests of the procedural scene renderer: determinism, geometry consistency, keypoints."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dicepipe.sources.synthetic.geometry import (
    Box,
    Capsule,
    Cylinder,
    Plane,
    Sphere,
    intersect,
)
from dicepipe.sources.synthetic.render import KINDS, camera_rays, normals_from_depth, render_scene

W, H = 64, 48


@pytest.fixture(scope="module")
def scenes():
    return [render_scene(seed, W, H, n_people=1) for seed in range(6)]


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


def test_same_seed_same_arrays_and_different_seeds_differ():
    a, b, c = render_scene(3, W, H, 1), render_scene(3, W, H, 1), render_scene(4, W, H, 1)
    for name in ("rgb", "depth", "normals", "instances", "keypoints"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    assert a.instance_kinds == b.instance_kinds and a.focal_px == b.focal_px
    assert not np.array_equal(a.rgb, c.rgb)
    assert not np.array_equal(a.depth, c.depth)


def test_shapes_dtypes_and_ranges(scenes):
    for s in scenes:
        assert s.rgb.shape == (H, W, 3) and s.rgb.dtype == np.uint8
        assert s.depth.shape == (H, W) and s.depth.dtype == np.float32
        assert s.normals.shape == (H, W, 3) and s.normals.dtype == np.float32
        assert s.instances.dtype == np.int32 and s.keypoints.dtype == np.float32
        assert np.all(s.depth > 0.5) and np.all(s.depth < 15)
        np.testing.assert_allclose(np.linalg.norm(s.normals, axis=-1), 1.0, atol=1e-5)
        assert s.instances.min() >= 1 and s.instances.max() <= len(s.instance_kinds)
        assert set(s.instance_kinds) <= set(KINDS)
        assert s.instance_kinds[:6] == ("floor", "wall", "wall", "wall", "wall", "ceiling")
        assert 2 <= sum(k in ("sphere", "box", "cylinder") for k in s.instance_kinds) <= 6
        hfov = np.degrees(2 * np.arctan(W / 2 / s.focal_px))
        assert 45 <= hfov <= 75
        # every normal faces the camera: it opposes the pixel's viewing ray
        rays = camera_rays(W, H, s.focal_px).reshape(H, W, 3)
        assert np.all(np.sum(rays * s.normals, axis=-1) < 0)


def test_normals_from_depth_matches_rendered_normals_on_planes(scenes):
    checked = 0
    for s in scenes:
        estimated = normals_from_depth(s.depth, s.focal_px)
        assert np.isnan(estimated[0]).all() and np.isnan(estimated[:, -1]).all()
        for i, kind in enumerate(s.instance_kinds):
            inner = ndimage.binary_erosion(s.instances == i + 1, iterations=2)
            if kind not in ("floor", "wall", "ceiling") or inner.sum() < 20:
                continue
            assert np.median(_angles(estimated[inner], s.normals[inner])) < 2.0
            checked += 1
    assert checked >= 8


def test_normals_from_depth_on_a_known_plane():
    f = 50.0
    rays = camera_rays(W, H, f)
    # plane through (0, -1, 0) tilted: n = (0, 0.6, 0.8); z-depth of each ray: t with z = -1
    n = np.array([0.0, 0.6, 0.8])
    t = (np.array([0.0, -1.0, -4.0]) @ n) / (rays @ n)
    normals = normals_from_depth(t.reshape(H, W).astype(np.float32), f)
    assert np.nanmax(_angles(normals[1:-1, 1:-1], n)) < 0.5


def test_floor_points_up_and_facing_walls_point_at_viewer(scenes):
    for s in scenes:
        floor = s.normals[s.instances == 1]
        if len(floor):
            assert np.all(floor[:, 1] > 0.9)
        back = s.normals[s.instances == 2]
        if len(back):
            assert np.all(back[:, 2] > 0.9)
        left, right = s.normals[s.instances == 3], s.normals[s.instances == 4]
        assert np.all(left[:, 0] > 0.9) and np.all(right[:, 0] < -0.9)


def test_keypoints_lie_on_their_person_and_follow_coco_conventions(scenes):
    on_person = total_visible = 0
    for s in scenes:
        people = [i + 1 for i, k in enumerate(s.instance_kinds) if k == "person"]
        assert s.keypoints.shape == (len(people), 17, 3)
        for kp, instance in zip(s.keypoints, people, strict=True):
            v = kp[:, 2]
            assert set(np.unique(v)) <= {0.0, 1.0, 2.0}
            assert np.all(kp[v == 0, :2] == 0)
            inside = kp[v > 0]
            assert np.all((inside[:, 0] >= 0) & (inside[:, 0] < W))
            assert np.all((inside[:, 1] >= 0) & (inside[:, 1] < H))
            seen = kp[v == 2]
            cols, rows = seen[:, 0].astype(int), seen[:, 1].astype(int)
            on_person += int(np.sum(s.instances[rows, cols] == instance))
            total_visible += len(seen)
    assert total_visible >= 30
    assert on_person / total_visible > 0.9


def test_figures_facing_the_camera_show_their_left_on_the_image_right():
    right_side = both = 0
    for seed in range(8):
        s = render_scene(100 + seed, 96, 72, n_people=1)
        for kp in s.keypoints:
            if kp[5, 2] > 0 and kp[6, 2] > 0:  # left/right shoulder
                both += 1
                right_side += int(kp[5, 0] > kp[6, 0])
    assert both >= 4 and right_side / both >= 0.75


def test_render_of_two_people_has_two_person_instances():
    s = render_scene(11, 96, 72, n_people=2)
    people = [i + 1 for i, k in enumerate(s.instance_kinds) if k == "person"]
    assert len(people) == 2 and s.keypoints.shape == (2, 17, 3)
    assert any((s.instances == p).any() for p in people)


@pytest.mark.parametrize(
    ("prim", "expected_t", "expected_n"),
    [
        (Plane((0.0, 0.0, 1.0), -5.0), 5.0, (0, 0, 1)),
        (Sphere((0.0, 0.0, -5.0), 1.0), 4.0, (0, 0, 1)),
        (Box((0.0, 0.0, -5.0), (1.0, 1.0, 1.0), np.pi / 2), 4.0, (0, 0, 1)),
        (Cylinder(0.0, -5.0, 1.0, -1.0, 1.0), 4.0, (0, 0, 1)),
        (Capsule((-1.0, 0.0, -5.0), (1.0, 0.0, -5.0), 0.5), 4.5, (0, 0, 1)),
        (Capsule((0.0, 0.0, -5.0), (0.0, 0.0, -7.0), 0.5), 4.5, (0, 0, 1)),
    ],
)
def test_primitives_hit_straight_on(prim, expected_t, expected_n):
    d = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    t, n = intersect(prim, np.zeros(3), d)
    assert t[0] == pytest.approx(expected_t)
    np.testing.assert_allclose(n[0], expected_n, atol=1e-9)
    assert np.isinf(t[1])  # the upward ray misses everything


def test_primitives_accept_one_origin_per_ray():
    sphere = Sphere((0.0, 0.0, -5.0), 1.0)
    origins = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -2.0], [3.0, 0.0, 0.0]])
    d = np.tile([0.0, 0.0, -1.0], (3, 1))
    t, _ = intersect(sphere, origins, d)
    assert t[0] == pytest.approx(4.0) and t[1] == pytest.approx(2.0) and np.isinf(t[2])

"""Procedural synthetic scenes with exact depth, normals, instances and COCO keypoints.

A closed box room (floor, four walls, ceiling) holds 2-6 spheres, boxes (turned about the
vertical axis) and vertical cylinders with seeded solid textures, plus optional standing
figures; a pinhole camera with a random field of view and small pitch/yaw ray-casts it
(vectorised over pixels) with Lambertian shading and cast shadows.

Camera convention: pixel (u, v) has its centre at (u + 0.5, v + 0.5); the principal point is
(W/2, H/2); the camera-frame ray of pixel (u, v) is ((u+0.5-W/2)/f, -(v+0.5-H/2)/f, -1), X right,
Y up, Z toward the viewer; z-depth is -Z_cam of the hit point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dicepipe.sources.synthetic import layout
from dicepipe.sources.synthetic.geometry import intersect, local_coords
from dicepipe.sources.synthetic.people import project_keypoints
from dicepipe.sources.synthetic.textures import albedo

KINDS = layout.KINDS
_AMBIENT = 0.3
_SHADOW_BIAS = 1e-4


@dataclass(frozen=True, eq=False)
class Scene:
    """One rendered view with its exact labels.

    Figures appear in `instance_kinds` in the same order as in `keypoints`: the p-th 'person'
    instance is keypoints[p]. Instances with no visible pixel (the wall behind the camera,
    a hidden object) keep their id.
    """

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metric z-depth, > 0
    normals: np.ndarray  # (H, W, 3) float32 unit, camera frame (X right, Y up, Z to viewer)
    instances: np.ndarray  # (H, W) int32, 1..K
    instance_kinds: tuple[str, ...]  # kind of instance i + 1, one of KINDS
    focal_px: float
    keypoints: np.ndarray  # (P, 17, 3) float32 (x, y, v), COCO visibility


def camera_rays(width: int, height: int, focal_px: float) -> np.ndarray:
    """Camera-frame ray directions (H*W, 3) with z = -1, so ray length t is the z-depth."""
    u = (np.arange(width) + 0.5 - width / 2) / focal_px
    v = -(np.arange(height) + 0.5 - height / 2) / focal_px
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu.ravel(), vv.ravel(), -np.ones(uu.size)], axis=1)


def _cast(
    parts: list[layout.Part], origin: np.ndarray, dirs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit over all parts: distance, world normal and part index per ray."""
    best_t = np.full(len(dirs), np.inf)
    best_n = np.zeros((len(dirs), 3))
    best_part = np.full(len(dirs), -1, dtype=np.int64)
    for index, part in enumerate(parts):
        t, n = intersect(part.primitive, origin, dirs)
        closer = t < best_t
        best_t = np.where(closer, t, best_t)
        best_n = np.where(closer[:, None], n, best_n)
        best_part = np.where(closer, index, best_part)
    return best_t, best_n, best_part


def _in_shadow(
    parts: list[layout.Part], points: np.ndarray, normals: np.ndarray, light: np.ndarray
) -> np.ndarray:
    """Whether each point's path toward the directional light is blocked by an object."""
    starts = points + _SHADOW_BIAS * normals
    dirs = np.broadcast_to(light, points.shape)
    blocked = np.zeros(len(points), dtype=bool)
    for part in parts:
        if part.kind not in layout.ROOM_KINDS:
            blocked |= np.isfinite(intersect(part.primitive, starts, dirs)[0])
    return blocked


def _shade(
    parts: list[layout.Part],
    points: np.ndarray,
    normals: np.ndarray,
    part_index: np.ndarray,
    light: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """sRGB uint8 colours: textured Lambertian albedo, ambient term, cast shadows, mild noise."""
    colour = np.zeros_like(points)
    for index in np.unique(part_index):
        sel = part_index == index
        part = parts[index]
        colour[sel] = albedo(part.texture, local_coords(part.primitive, points[sel]))
    lambert = np.clip(normals @ light, 0.0, None)
    lit = lambert > 0
    shadowed = np.zeros(len(points), dtype=bool)
    shadowed[lit] = _in_shadow(parts, points[lit], normals[lit], light)
    intensity = _AMBIENT + (1.0 - _AMBIENT) * 1.15 * lambert * ~shadowed
    linear = np.clip(colour * intensity[:, None], 0.0, 1.0)
    srgb = linear ** (1 / 2.2) * 255.0 + rng.normal(0.0, 1.2, linear.shape)
    return np.clip(np.round(srgb), 0, 255).astype(np.uint8)


def render_scene(seed: int, width: int, height: int, n_people: int = 0) -> Scene:
    """Render a random room scene; all randomness comes from default_rng(seed)."""
    rng = np.random.default_rng(seed)
    setup = layout.sample_layout(rng, width, height, n_people)
    cam = setup.camera
    dirs_cam = camera_rays(width, height, cam.focal_px)
    lengths = np.linalg.norm(dirs_cam, axis=1)
    dirs = (dirs_cam / lengths[:, None]) @ cam.rotation.T
    t, n_world, part_index = _cast(setup.parts, cam.position, dirs)
    if not np.all(np.isfinite(t)):
        raise RuntimeError("a camera ray left the room; the room must be closed")
    points = cam.position + t[:, None] * dirs
    rgb = _shade(setup.parts, points, n_world, part_index, setup.light, rng)
    n_cam = n_world @ cam.rotation
    n_cam *= np.where(np.sum(n_cam * dirs_cam, axis=1) > 0, -1.0, 1.0)[:, None]
    n_cam /= np.linalg.norm(n_cam, axis=1, keepdims=True)
    instance_of = np.array([p.instance for p in setup.parts], dtype=np.int32)
    depth = (t / lengths).reshape(height, width).astype(np.float32)
    instances = instance_of[part_index].reshape(height, width)
    keypoints = np.zeros((len(setup.figures), 17, 3), dtype=np.float32)
    for p, (figure, inst) in enumerate(zip(setup.figures, setup.figure_instances, strict=True)):
        kp_cam = (figure.keypoints - cam.position) @ cam.rotation
        keypoints[p] = project_keypoints(
            kp_cam, figure.tolerance, cam.focal_px, depth, instances, inst
        )
    return Scene(
        rgb=rgb.reshape(height, width, 3),
        depth=depth,
        normals=n_cam.reshape(height, width, 3).astype(np.float32),
        instances=instances,
        instance_kinds=setup.kinds,
        focal_px=float(cam.focal_px),
        keypoints=keypoints,
    )


def unproject(depth: np.ndarray, focal_px: float) -> np.ndarray:
    """Camera-frame points (H, W, 3) of a z-depth map under the module's pinhole convention."""
    height, width = depth.shape
    z = depth.astype(np.float64)
    u = (np.arange(width) + 0.5 - width / 2) / focal_px
    v = -(np.arange(height) + 0.5 - height / 2) / focal_px
    return np.stack([u[None, :] * z, v[:, None] * z, -z], axis=-1)


def normals_from_depth(depth: np.ndarray, focal_px: float) -> np.ndarray:
    """Camera-frame unit normals (H, W, 3) float32 from a z-depth map: cross product of the
    central-difference tangents of the unprojected points, turned toward the camera; NaN on
    the one-pixel border and where the tangents are degenerate."""
    points = unproject(depth, focal_px)
    du = points[1:-1, 2:] - points[1:-1, :-2]
    dv = points[2:, 1:-1] - points[:-2, 1:-1]
    n = np.cross(du, dv)
    n *= np.where(np.sum(n * points[1:-1, 1:-1], axis=-1) > 0, -1.0, 1.0)[..., None]
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    out = np.full(points.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[1:-1, 1:-1] = np.where(norm > 0, n / norm, np.nan)
    return out.astype(np.float32)

"""Vectorised ray-primitive intersections for the synthetic scene renderer.

Every `intersect_*` function takes ray origins `o` ((3,) shared, or (N, 3) one per ray) and
unit directions `d` (N, 3) in
the world frame (Y up) and returns `(t, n)`: the distance to the nearest hit in front of the
origin (`inf` where the ray misses) and the unit world-frame surface normal there (N, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-9


def rot_y(angle: float) -> np.ndarray:
    """Rotation matrix about the world Y (vertical) axis by `angle` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(angle: float) -> np.ndarray:
    """Rotation matrix about the X axis by `angle` radians (positive tilts -Z toward +Y)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


@dataclass(frozen=True)
class Plane:
    """An infinite plane `dot(normal, p) = offset`; `normal` is the side the viewer sees."""

    normal: tuple[float, float, float]
    offset: float


@dataclass(frozen=True)
class Sphere:
    """A sphere with centre and radius."""

    center: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class Box:
    """A box with centre, half extents (x, y, z) and a rotation about the vertical axis."""

    center: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float


@dataclass(frozen=True)
class Cylinder:
    """A vertical capped cylinder: axis through (cx, cz), spanning heights y0..y1."""

    cx: float
    cz: float
    radius: float
    y0: float
    y1: float


@dataclass(frozen=True)
class Capsule:
    """A capsule: all points within `radius` of the segment a-b."""

    a: tuple[float, float, float]
    b: tuple[float, float, float]
    radius: float


Primitive = Plane | Sphere | Box | Cylinder | Capsule


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product with broadcasting: (N, 3) or (3,) operands."""
    return np.sum(a * b, axis=-1)


def intersect_plane(plane: Plane, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray-plane hits with t > 0; the normal returned is the plane's fixed normal."""
    normal = np.asarray(plane.normal, dtype=np.float64)
    denom = d @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (plane.offset - o @ normal) / denom
    t = np.where((np.abs(denom) > _EPS) & (t > 0), t, np.inf)
    return t, np.broadcast_to(normal, d.shape).copy()


def intersect_sphere(sphere: Sphere, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray-sphere front hits (the origin is assumed outside the sphere)."""
    center = np.asarray(sphere.center, dtype=np.float64)
    oc = o - center
    b = _dot(d, oc)
    h = b * b - (_dot(oc, oc) - sphere.radius**2)
    t = -b - np.sqrt(np.maximum(h, 0.0))
    t = np.where((h >= 0) & (t > 0), t, np.inf)
    normal = (o + np.where(np.isfinite(t), t, 0.0)[:, None] * d - center) / sphere.radius
    return t, np.where(np.isfinite(t)[:, None], normal, 0.0)


def intersect_box(box: Box, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray-box hits by the slab method in the box's local (unrotated) frame."""
    rot = rot_y(box.yaw)
    o_local = (o - np.asarray(box.center)) @ rot
    d_local = d @ rot
    half = np.asarray(box.half, dtype=np.float64)
    safe = np.where(np.abs(d_local) < _EPS, _EPS, d_local)
    t1 = (-half - o_local) / safe
    t2 = (half - o_local) / safe
    t_min, t_max = np.minimum(t1, t2), np.maximum(t1, t2)
    near, far = t_min.max(axis=1), t_max.min(axis=1)
    t = np.where((near <= far) & (near > 0), near, np.inf)
    axis = t_min.argmax(axis=1)
    n_local = np.zeros_like(d_local)
    rows = np.arange(len(d))
    n_local[rows, axis] = -np.sign(d_local[rows, axis])
    normal = n_local @ rot.T
    return t, np.where(np.isfinite(t)[:, None], normal, 0.0)


def intersect_cylinder(
    cyl: Cylinder, o: np.ndarray, d: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ray hits on a vertical cylinder's side and its two caps."""
    ox, oz = o[..., 0] - cyl.cx, o[..., 2] - cyl.cz
    dx, dz = d[:, 0], d[:, 2]
    a = np.maximum(dx * dx + dz * dz, _EPS)
    b = dx * ox + dz * oz
    h = b * b - a * (ox * ox + oz * oz - cyl.radius**2)
    t_side = (-b - np.sqrt(np.maximum(h, 0.0))) / a
    y = o[..., 1] + t_side * d[:, 1]
    t_side = np.where((h >= 0) & (t_side > 0) & (y >= cyl.y0) & (y <= cyl.y1), t_side, np.inf)
    t_safe = np.where(np.isfinite(t_side), t_side, 0.0)
    n_side = np.stack([ox + t_safe * dx, np.zeros_like(dx), oz + t_safe * dz], axis=1)
    n_side = n_side / cyl.radius
    t, normal = t_side, n_side
    for y_cap, sign in ((cyl.y1, 1.0), (cyl.y0, -1.0)):
        t_cap, n_cap = intersect_plane(Plane((0.0, sign, 0.0), sign * y_cap), o, d)
        cap_safe = np.where(np.isfinite(t_cap), t_cap, 0.0)
        px, pz = ox + cap_safe * dx, oz + cap_safe * dz
        inside = (px * px + pz * pz) <= cyl.radius**2
        t_cap = np.where(inside, t_cap, np.inf)
        closer = t_cap < t
        t = np.where(closer, t_cap, t)
        normal = np.where(closer[:, None], n_cap, normal)
    return t, np.where(np.isfinite(t)[:, None], normal, 0.0)


def intersect_capsule(cap: Capsule, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray-capsule front hits (cylinder body, then the end spheres)."""
    pa, pb = np.asarray(cap.a, dtype=np.float64), np.asarray(cap.b, dtype=np.float64)
    ba, oa = pb - pa, o - pa
    baba, baoa, oaoa = ba @ ba, oa @ ba, _dot(oa, oa)
    bard, rdoa = d @ ba, _dot(d, oa)
    a = np.maximum(baba - bard * bard, _EPS)
    b = baba * rdoa - baoa * bard
    c = baba * oaoa - baoa * baoa - cap.radius**2 * baba
    h = b * b - a * c
    t_body = (-b - np.sqrt(np.maximum(h, 0.0))) / a
    y = baoa + t_body * bard
    on_body = (h >= 0) & (y > 0) & (y < baba) & (t_body > 0)
    t = np.where(on_body, t_body, np.inf)
    for end in (pa, pb):
        t_end, _ = intersect_sphere(Sphere(tuple(end), cap.radius), o, d)
        t = np.minimum(t, t_end)
    hit = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    s = np.clip(((hit - pa) @ ba) / baba, 0.0, 1.0)
    normal = (hit - (pa + s[:, None] * ba)) / cap.radius
    return t, np.where(np.isfinite(t)[:, None], normal, 0.0)


def intersect(prim: Primitive, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch to the intersection routine of `prim`'s type."""
    if isinstance(prim, Plane):
        return intersect_plane(prim, o, d)
    if isinstance(prim, Sphere):
        return intersect_sphere(prim, o, d)
    if isinstance(prim, Box):
        return intersect_box(prim, o, d)
    if isinstance(prim, Cylinder):
        return intersect_cylinder(prim, o, d)
    return intersect_capsule(prim, o, d)


def local_coords(prim: Primitive, points: np.ndarray) -> np.ndarray:
    """World points expressed in the primitive's own frame, for solid textures."""
    if isinstance(prim, Box):
        return (points - np.asarray(prim.center)) @ rot_y(prim.yaw)
    if isinstance(prim, Sphere):
        return points - np.asarray(prim.center)
    if isinstance(prim, Cylinder):
        return points - np.array([prim.cx, 0.0, prim.cz])
    return points

"""Standing human-like figures built from capsules and spheres, with COCO keypoints.

A figure is built in a local frame where it faces +Z with its left side at +X (so a figure
facing the camera shows its left on the image's right, as in a photograph), then rotated about
the vertical axis and placed on the floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dicepipe.sources.synthetic.geometry import Capsule, Primitive, Sphere, rot_y

KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
# COCO's person skeleton, 1-based keypoint indices, as in person_keypoints_*.json.
SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
# How far (as a fraction of body height) the body surface may lie in front of a keypoint
# while the keypoint still counts as visible: roughly the radius of the limb around it.
_TOLERANCE = np.array([0.03] * 5 + [0.065] * 2 + [0.045] * 4 + [0.07] * 2 + [0.06] * 4)
# Part material groups, indexing the figure's textures.
SKIN, SHIRT, PANTS, SHOES = 0, 1, 2, 3


@dataclass(frozen=True, eq=False)
class Figure:
    """A posed figure in world coordinates."""

    keypoints: np.ndarray  # (17, 3) world positions, COCO order
    parts: tuple[Primitive, ...]
    materials: tuple[int, ...]  # SKIN/SHIRT/PANTS/SHOES per part
    tolerance: np.ndarray  # (17,) metres, see _TOLERANCE
    footprint: float  # radius (m) of the floor disc the figure occupies


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _bend(direction: np.ndarray, toward: np.ndarray, angle: float) -> np.ndarray:
    """Rotate unit `direction` by `angle` in the plane it spans with `toward`."""
    perp = toward - (toward @ direction) * direction
    norm = np.linalg.norm(perp)
    if norm < 1e-6:
        return direction
    return np.cos(angle) * direction + np.sin(angle) * perp / norm


def _limbs(rng: np.random.Generator, h: float) -> dict[str, np.ndarray]:
    """Joint positions of a randomly posed figure standing at the origin (before grounding)."""
    forward = np.array([0.0, 0.0, 1.0])
    joints: dict[str, np.ndarray] = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder = np.array([sign * 0.11 * h, 0.815 * h, 0.0])
        abduct, swing = np.radians(rng.uniform(5, 55)), np.radians(rng.uniform(-35, 35))
        upper = _unit(np.array([sign * np.sin(abduct), -np.cos(abduct), np.sin(swing)]))
        fore = _bend(upper, forward, np.radians(rng.uniform(0, 80)))
        joints[f"{side}_shoulder"] = shoulder
        joints[f"{side}_elbow"] = shoulder + 0.17 * h * upper
        joints[f"{side}_wrist"] = joints[f"{side}_elbow"] + 0.15 * h * fore
        hip = np.array([sign * 0.075 * h, 0.52 * h, 0.0])
        stride = np.radians(rng.uniform(-20, 20))
        thigh = _unit(np.array([sign * 0.04, -np.cos(stride), np.sin(stride)]))
        shin = _bend(thigh, -forward, np.radians(rng.uniform(0, 25)))
        joints[f"{side}_hip"] = hip
        joints[f"{side}_knee"] = hip + 0.245 * h * thigh
        joints[f"{side}_ankle"] = joints[f"{side}_knee"] + 0.245 * h * shin
    return joints


def _face(rng: np.random.Generator, h: float) -> tuple[np.ndarray, float, dict[str, np.ndarray]]:
    """Head centre, head radius and face keypoints just inside the head's surface."""
    centre, radius = np.array([0.0, 0.915 * h, 0.0]), 0.062 * h
    turn = rot_y(np.radians(rng.uniform(-30, 30)))
    offsets = {
        "nose": (0.0, -0.15, 1.0),
        "left_eye": (0.38, 0.2, 0.9),
        "right_eye": (-0.38, 0.2, 0.9),
        "left_ear": (0.97, 0.0, 0.25),
        "right_ear": (-0.97, 0.0, 0.25),
    }
    face = {k: centre + 0.97 * radius * (turn @ _unit(np.array(v))) for k, v in offsets.items()}
    return centre, radius, face


def _parts(
    j: dict[str, np.ndarray], head: np.ndarray, head_r: float, h: float
) -> list[tuple[Primitive, int]]:
    """The figure's capsules and spheres with their material groups."""

    def cap(a: np.ndarray, b: np.ndarray, r: float) -> Capsule:
        return Capsule(tuple(a), tuple(b), r * h)

    parts: list[tuple[Primitive, int]] = [
        (Sphere(tuple(head), head_r), SKIN),
        (cap(np.array([0, 0.79 * h, 0]), np.array([0, 0.89 * h, 0]), 0.028), SKIN),
        (cap(j["left_shoulder"], j["right_shoulder"], 0.038), SHIRT),
        (cap(j["left_hip"], j["right_hip"], 0.055), PANTS),
    ]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        top = np.array([sign * 0.055 * h, 0.78 * h, 0.0])
        bottom = np.array([sign * 0.05 * h, j[f"{side}_hip"][1] + 0.04 * h, 0.0])
        toe = j[f"{side}_ankle"] + np.array([0.0, -0.015 * h, 0.07 * h])
        hand = j[f"{side}_wrist"] + 0.03 * h * _unit(j[f"{side}_wrist"] - j[f"{side}_elbow"])
        parts += [
            (cap(top, bottom, 0.06), SHIRT),
            (cap(j[f"{side}_shoulder"], j[f"{side}_elbow"], 0.032), SHIRT),
            (cap(j[f"{side}_elbow"], j[f"{side}_wrist"], 0.027), SKIN),
            (Sphere(tuple(hand), 0.028 * h), SKIN),
            (cap(j[f"{side}_hip"], j[f"{side}_knee"], 0.055), PANTS),
            (cap(j[f"{side}_knee"], j[f"{side}_ankle"], 0.042), PANTS),
            (cap(j[f"{side}_ankle"], toe, 0.028), SHOES),
        ]
    return parts


def make_figure(
    rng: np.random.Generator, base: tuple[float, float], yaw: float, height: float
) -> Figure:
    """A randomly posed figure of `height` m standing at floor point `base` (x, z), turned
    by `yaw` radians about the vertical (yaw 0 faces +Z, toward a camera looking down -Z)."""
    joints = _limbs(rng, height)
    head, head_r, face = _face(rng, height)
    joints.update(face)
    lift = 0.045 * height - min(joints["left_ankle"][1], joints["right_ankle"][1])
    shift = np.array([0.0, lift, 0.0])
    joints = {k: v + shift for k, v in joints.items()}
    local_parts = _parts(joints, head + shift, head_r, height)
    rot, origin = rot_y(yaw), np.array([base[0], 0.0, base[1]])

    def place(p: tuple[float, ...] | np.ndarray) -> tuple[float, float, float]:
        return tuple(rot @ np.asarray(p) + origin)

    parts = tuple(
        Sphere(place(p.center), p.radius)
        if isinstance(p, Sphere)
        else Capsule(place(p.a), place(p.b), p.radius)
        for p, _ in local_parts
    )
    local_kp = np.stack([joints[name] for name in KEYPOINT_NAMES])
    reach = float(np.hypot(local_kp[:, 0], local_kp[:, 2]).max()) + 0.07 * height
    return Figure(
        keypoints=local_kp @ rot.T + origin,
        parts=parts,
        materials=tuple(m for _, m in local_parts),
        tolerance=_TOLERANCE * height,
        footprint=reach,
    )


def project_keypoints(
    points_cam: np.ndarray,
    tolerance: np.ndarray,
    focal_px: float,
    depth: np.ndarray,
    instances: np.ndarray,
    instance_id: int,
) -> np.ndarray:
    """COCO (x, y, v) for camera-frame keypoints: v=2 where the rendered pixel shows this
    figure within `tolerance` of the keypoint's depth, 1 if inside the image but hidden,
    0 (with x = y = 0, as COCO stores it) outside the image or behind the camera."""
    height, width = depth.shape
    z = -points_cam[:, 2]
    in_front = z > 1e-6
    safe_z = np.where(in_front, z, 1.0)
    x = width / 2 + focal_px * points_cam[:, 0] / safe_z
    y = height / 2 - focal_px * points_cam[:, 1] / safe_z
    inside = in_front & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    col = np.clip(np.floor(np.where(inside, x, 0)).astype(np.int64), 0, width - 1)
    row = np.clip(np.floor(np.where(inside, y, 0)).astype(np.int64), 0, height - 1)
    seen = (instances[row, col] == instance_id) & (depth[row, col] >= z - tolerance)
    v = np.where(inside, np.where(seen, 2, 1), 0)
    out = np.stack([np.where(inside, x, 0.0), np.where(inside, y, 0.0), v], axis=1)
    return out.astype(np.float32)

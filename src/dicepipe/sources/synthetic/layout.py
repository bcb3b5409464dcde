"""Random room, camera, object and figure layout for the synthetic renderer."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dicepipe.sources.synthetic.geometry import (
    Box,
    Cylinder,
    Plane,
    Primitive,
    Sphere,
    rot_x,
    rot_y,
)
from dicepipe.sources.synthetic.people import Figure, make_figure
from dicepipe.sources.synthetic.textures import Texture, make_texture

KINDS = ("floor", "wall", "ceiling", "sphere", "box", "cylinder", "person")
ROOM_KINDS = ("floor", "wall", "ceiling")
_NEAREST = 2.0  # metres: the closest an object's centre may stand in front of the camera
_FRONT_GAP = 0.6  # metres between the camera and the wall behind it
_SKIN_TONES = ((0.80, 0.55, 0.42), (0.62, 0.40, 0.28), (0.40, 0.25, 0.16), (0.90, 0.70, 0.58))


@dataclass(frozen=True, eq=False)
class Part:
    """One primitive of one instance, with its surface texture."""

    instance: int  # 1-based instance id
    kind: str
    primitive: Primitive
    texture: Texture


@dataclass(frozen=True, eq=False)
class Camera:
    """Pinhole camera: world position, camera-to-world rotation, focal length in pixels."""

    position: np.ndarray
    rotation: np.ndarray
    focal_px: float


@dataclass(frozen=True, eq=False)
class Layout:
    """Everything the renderer needs: parts, camera, light, figures."""

    parts: list[Part]
    kinds: tuple[str, ...]
    camera: Camera
    light: np.ndarray  # unit world direction toward the light
    figures: list[Figure]
    figure_instances: list[int]


@dataclass(frozen=True)
class _Room:
    width: float
    depth: float
    height: float


def _room_parts(rng: np.random.Generator, room: _Room) -> list[tuple[str, Primitive, Texture]]:
    """Floor, back/left/right/front walls and ceiling, normals facing into the room."""
    floor_kind = str(rng.choice(["checker", "stripes", "noise"]))
    floor = make_texture(rng, floor_kind, 0.45, 0.55, scale=(0.3, 0.8))
    wall_kind = str(rng.choice(["plain", "noise", "stripes"]))
    walls = make_texture(rng, wall_kind, 0.25, 0.75, scale=(0.3, 1.0))
    ceiling = make_texture(rng, "plain", 0.05, 0.85)
    half = room.width / 2
    return [
        ("floor", Plane((0.0, 1.0, 0.0), 0.0), floor),
        ("wall", Plane((0.0, 0.0, 1.0), -room.depth), walls),
        ("wall", Plane((1.0, 0.0, 0.0), -half), walls),
        ("wall", Plane((-1.0, 0.0, 0.0), -half), walls),
        ("wall", Plane((0.0, 0.0, -1.0), -_FRONT_GAP), walls),
        ("ceiling", Plane((0.0, -1.0, 0.0), -room.height), ceiling),
    ]


def _camera(rng: np.random.Generator, room: _Room, width: int) -> tuple[Camera, float]:
    """A camera near the front wall looking down -Z; returns it and its horizontal FOV."""
    hfov = np.radians(rng.uniform(45.0, 75.0))
    focal = (width / 2) / np.tan(hfov / 2)
    position = np.array([rng.uniform(-0.2, 0.2) * room.width / 2, rng.uniform(1.1, 1.7), 0.0])
    yaw, pitch = np.radians(rng.uniform(-10.0, 10.0)), np.radians(rng.uniform(-14.0, 2.0))
    return Camera(position, rot_y(yaw) @ rot_x(pitch), float(focal)), float(hfov)


class _Floor:
    """Rejection sampler of non-overlapping floor discs inside the camera's view."""

    def __init__(self, room: _Room, camera: Camera, hfov: float) -> None:
        self.room, self.camera, self.hfov = room, camera, hfov
        forward = camera.rotation @ np.array([0.0, 0.0, -1.0])
        self.yaw_slope = -forward[0] / max(-forward[2], 1e-6)
        self.taken: list[tuple[float, float, float]] = []

    def place(
        self, rng: np.random.Generator, radius: float, nearest: float, spread: float = 0.8
    ) -> tuple[float, float] | None:
        """A free (x, z) for a disc of `radius` at least `nearest` m ahead and within
        `spread` of the half field of view, or None."""
        room, cam = self.room, self.camera
        for _ in range(60):
            dist = rng.uniform(nearest, room.depth - radius - 0.3)
            centre = cam.position[0] + self.yaw_slope * dist
            half = spread * np.tan(self.hfov / 2) * dist
            x = rng.uniform(centre - half, centre + half)
            z = cam.position[2] - dist
            if abs(x) > room.width / 2 - radius - 0.05:
                continue
            if all(np.hypot(x - a, z - b) > radius + r + 0.08 for a, b, r in self.taken):
                self.taken.append((x, z, radius))
                return float(x), float(z)
        return None


def _object(rng: np.random.Generator, floor: _Floor) -> tuple[str, Primitive] | None:
    """A random sphere, box or cylinder resting on the floor, or None if no room is left."""
    kind = str(rng.choice(["sphere", "box", "cylinder"]))
    if kind == "sphere":
        r = rng.uniform(0.15, 0.55)
        spot = floor.place(rng, r, _NEAREST)
        return None if spot is None else (kind, Sphere((spot[0], r, spot[1]), r))
    if kind == "box":
        half = (rng.uniform(0.15, 0.6), rng.uniform(0.15, 0.75), rng.uniform(0.15, 0.6))
        spot = floor.place(rng, float(np.hypot(half[0], half[2])), _NEAREST)
        if spot is None:
            return None
        return kind, Box((spot[0], half[1], spot[1]), half, rng.uniform(0.0, np.pi))
    r, top = rng.uniform(0.12, 0.4), rng.uniform(0.3, 1.6)
    spot = floor.place(rng, r, _NEAREST)
    return None if spot is None else (kind, Cylinder(spot[0], spot[1], r, 0.0, top))


def _figure_textures(rng: np.random.Generator) -> tuple[Texture, ...]:
    """Skin, shirt, pants and shoe textures of one figure (indexed by material group)."""
    skin = make_texture(rng, "plain")
    skin = replace(skin, color_a=np.array(_SKIN_TONES[rng.integers(len(_SKIN_TONES))]))
    shirt = make_texture(rng, str(rng.choice(["plain", "stripes", "checker"])), 0.8, 0.6)
    pants = make_texture(rng, str(rng.choice(["plain", "noise"])), 0.5, 0.35)
    shoes = make_texture(rng, "plain", 0.2, 0.15)
    return skin, shirt, pants, shoes


def sample_layout(rng: np.random.Generator, width: int, height: int, n_people: int) -> Layout:
    """Draw a room, camera, light, `n_people` figures and 2-6 objects from `rng`."""
    del height  # the vertical field of view follows from the focal length
    room = _Room(rng.uniform(4.0, 7.0), rng.uniform(5.0, 9.0), rng.uniform(2.6, 3.4))
    camera, hfov = _camera(rng, room, width)
    parts: list[Part] = []
    kinds: list[str] = []
    for kind, prim, texture in _room_parts(rng, room):
        kinds.append(kind)
        parts.append(Part(len(kinds), kind, prim, texture))
    floor = _Floor(room, camera, hfov)
    figures, figure_instances = [], []
    for _ in range(n_people):
        stature, yaw = rng.uniform(1.5, 1.9), np.radians(rng.uniform(-60.0, 60.0))
        pose_seed = int(rng.integers(2**63))
        figure = make_figure(np.random.default_rng(pose_seed), (0.0, 0.0), yaw, stature)
        spot = floor.place(rng, figure.footprint, 2.6, spread=0.55)
        if spot is None:
            continue
        figure = make_figure(np.random.default_rng(pose_seed), spot, yaw, stature)
        kinds.append("person")
        textures = _figure_textures(rng)
        for prim, material in zip(figure.parts, figure.materials, strict=True):
            parts.append(Part(len(kinds), "person", prim, textures[material]))
        figures.append(figure)
        figure_instances.append(len(kinds))
    for _ in range(int(rng.integers(2, 7))):
        drawn = _object(rng, floor)
        if drawn is not None:
            kinds.append(drawn[0])
            parts.append(Part(len(kinds), drawn[0], drawn[1], make_texture(rng, None, 0.8, 0.65)))
    light = np.array([rng.uniform(-0.6, 0.6), 1.0, rng.uniform(-0.2, 0.8)])
    light /= np.linalg.norm(light)
    return Layout(parts, tuple(kinds), camera, light, figures, figure_instances)

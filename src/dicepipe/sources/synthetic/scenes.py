"""The `synthetic` source: procedurally rendered rooms with exact depth, normals, instances and
keypoints, sampled in units like any other source (as synthetic data trains Marigold and
D3-Predictor).

Item `i` of a split renders from `item_seed(seed, "synthetic:<split>", i)`; its `source_id`
(`<index>.<render seed hex>.<people>`) names everything the render needs, so the
ground-truth teacher re-renders the exact depth and normals from the id and the image size,
and no label file is stored. Splits draw disjoint seeds: a held-out split never repeats a
training scene. Instances become class-agnostic mask annotations (COCO RLE, prompt points by
`sampling.pixel_draw`'s rule); people also carry their COCO keypoints, so one scene feeds
depth, normals, point and entity segmentation and pose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from dicepipe.imageio import encode_png
from dicepipe.params.sample import SampleParams, SyntheticParams
from dicepipe.records import ItemError
from dicepipe.sampling import item_rng, prompt_points
from dicepipe.sources.common import Outcome, Unit, row_outcome, sample_row, unit_name
from dicepipe.sources.synthetic import formats as fmt
from dicepipe.sources.synthetic.corpus import item_seed
from dicepipe.sources.synthetic.render import Scene, render_scene

SOURCE = "synthetic"
READ_FIELDS = ("width", "height", "people_prob", "split", "points")
# exact instance masks (class-agnostic) and keypoints: what the rendered annotations feed
TASKS = ("point_segmentation", "entity_segmentation", "pose")
_ID = re.compile(r"(\d{7})\.([0-9a-f]{16})\.(\d)")


def plan_units(params: SyntheticParams, seed: int) -> list[Unit]:
    """Blocks of `per_unit` consecutive scene indices of the split."""
    units = []
    for start in range(0, params.n, params.per_unit):
        indices = range(start, min(params.n, start + params.per_unit))
        items = [(scene_id(seed, params, i), {"index": i}) for i in indices]
        name = unit_name(SOURCE, params.split, f"{start:07d}")
        units.append(Unit(SOURCE, name, f"render:{params.split}", tuple(items), TASKS))
    return units


def scene_id(seed: int, params: SyntheticParams, index: int) -> str:
    """The source id of scene `index`: its index, render seed and number of people."""
    render_seed = item_seed(seed, f"{SOURCE}:{params.split}", index)
    people = int(np.random.default_rng(render_seed).random() < params.people_prob)
    return f"{index:07d}.{render_seed:016x}.{people}"


def parse_scene_id(source_id: str) -> tuple[int, int]:
    """(render seed, people) of a synthetic source id; ItemError `bad_id` otherwise."""
    match = _ID.fullmatch(source_id)
    if match is None:
        raise ItemError("bad_id", f"{source_id!r} is not a synthetic scene id")
    return int(match.group(2), 16), int(match.group(3))


def render_from_id(source_id: str, width: int, height: int) -> Scene:
    """The scene a synthetic source id names, rendered at width x height."""
    render_seed, people = parse_scene_id(source_id)
    return render_scene(render_seed, width, height, n_people=people)


def iter_unit(unit: Unit, params: SampleParams) -> Iterator[Outcome]:
    """Render every scene of one block into a sample row."""
    for source_id, _ in unit.items:
        yield row_outcome(f"{SOURCE}/{source_id}", _scene_row, unit, source_id, params)


def _scene_row(unit: Unit, source_id: str, params: SampleParams) -> dict[str, Any]:
    section = params.synthetic
    scene = render_from_id(source_id, section.width, section.height)
    rng = item_rng(params.seed, f"{SOURCE}/{source_id}")
    return sample_row(
        SOURCE,
        source_id,
        unit.name,
        f"{unit.location}/{source_id}",
        encode_png(scene.rgb),
        scene_annotations(scene, rng, section),
        params.max_pixels,
        tasks=unit.tasks,
    )


def scene_annotations(
    scene: Scene, rng: np.random.Generator, params: SyntheticParams
) -> list[dict[str, Any]]:
    """Class-agnostic mask annotations of every visible instance, with prompt points; people
    also get their COCO keypoints (x, y, v per keypoint, zeros where not visible)."""
    annotations = fmt.mask_annotations(scene.instances, rng, first_id=0)
    people = [i + 1 for i, kind in enumerate(scene.instance_kinds) if kind == "person"]
    for annotation in annotations:
        mask = scene.instances == annotation["id"]
        points = prompt_points(mask, params.points.max, rng)
        annotation["prompt_points"] = [[float(x), float(y)] for x, y in points.tolist()]
        if annotation["id"] in people:
            person = scene.keypoints[people.index(annotation["id"])]
            keypoints: list[float | int] = []
            for x, y, v in person.tolist():
                keypoints += [round(x, 2), round(y, 2), int(v)] if v > 0 else [0, 0, 0]
            annotation["keypoints"] = keypoints
            annotation["num_keypoints"] = int((person[:, 2] > 0).sum())
    return annotations

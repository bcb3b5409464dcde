"""The `synthetic` source: rendered scenes sampled in units, labelled exactly by re-rendering."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dicepipe.imageio import decode_image
from dicepipe.params.encode import EncodeParams
from dicepipe.params.sample import SampleParams, SyntheticParams
from dicepipe.pipeline.examples import examples_for_item
from dicepipe.records import ItemError
from dicepipe.sources.common import collect
from dicepipe.sources.synthetic import scenes
from dicepipe.teachers.base import TeacherInput
from dicepipe.teachers.ground_truth import GroundTruthTeacher

SMALL = SyntheticParams(n=4, per_unit=3, width=48, height=36, people_prob=1.0)


def _rows(params: SyntheticParams = SMALL, seed: int = 0) -> list[dict]:
    sample = SampleParams(seed=seed, synthetic=params)
    rows = []
    for unit in scenes.plan_units(params, seed):
        unit_rows, errors, _ = collect(scenes.iter_unit(unit, sample))
        assert errors == []
        rows += unit_rows
    return rows


def test_units_cover_every_scene_once_and_ids_are_stable():
    units = scenes.plan_units(SMALL, 0)
    assert [u.name for u in units] == ["synthetic-train-0000000", "synthetic-train-0000003"]
    ids = [source_id for u in units for source_id, _ in u.items]
    assert len(set(ids)) == 4 and ids == [
        i for u in scenes.plan_units(SMALL, 0) for i, _ in u.items
    ]
    assert [int(i.split(".")[0]) for i in ids] == [0, 1, 2, 3]


def test_heldout_split_and_other_seeds_render_other_scenes():
    train = {i.split(".", 1)[1] for u in scenes.plan_units(SMALL, 0) for i, _ in u.items}
    heldout_params = SyntheticParams(n=4, per_unit=3, split="heldout")
    heldout = {i.split(".", 1)[1] for u in scenes.plan_units(heldout_params, 0) for i, _ in u.items}
    other_seed = {i.split(".", 1)[1] for u in scenes.plan_units(SMALL, 1) for i, _ in u.items}
    assert not train & heldout and not train & other_seed


def test_rows_carry_masks_with_points_inside_and_people_keypoints():
    for row in _rows():
        assert (row["width"], row["height"]) == (48, 36)
        annotations = json.loads(row["annotations"])
        assert annotations and all("category_id" not in a for a in annotations)
        from pycocotools import mask as mask_utils

        for annotation in annotations:
            rle = dict(annotation["segmentation"], counts=annotation["segmentation"]["counts"])
            mask = mask_utils.decode({**rle, "counts": rle["counts"].encode()}).astype(bool)
            assert len(annotation["prompt_points"]) == 5
            for x, y in annotation["prompt_points"]:
                assert mask[int(y * 36), int(x * 48)]
        people = [a for a in annotations if "keypoints" in a]
        assert len(people) == 1 and len(people[0]["keypoints"]) == 51


def test_rows_are_byte_identical_across_runs():
    assert _rows() == _rows()


def test_ground_truth_teacher_re_renders_the_exact_labels():
    row = _rows()[0]
    image = decode_image(row["image"]).rgb
    item = TeacherInput(row["key"], row["source"], row["source_id"], image)
    teacher = GroundTruthTeacher("nowhere")
    assert teacher.has_label(item)
    label = teacher.label([item])[0]
    scene = scenes.render_from_id(row["source_id"], 48, 36)
    assert np.array_equal(label.depth, scene.depth) and np.array_equal(label.normals, scene.normals)
    assert label.focal_px == scene.focal_px
    with pytest.raises(ItemError, match="label_mismatch|does not give"):
        teacher.label([TeacherInput(row["key"], "synthetic", row["source_id"], image[::-1].copy())])
    with pytest.raises(ItemError) as error:
        teacher.label([TeacherInput("synthetic/x", "synthetic", "not-an-id", image)])
    assert error.value.reason == "bad_id"


def test_a_scene_feeds_depth_normals_point_entity_segmentation_and_pose():
    row = _rows()[0]
    scene = scenes.render_from_id(row["source_id"], 48, 36)
    meta = {"teacher": GroundTruthTeacher.identity, "focal_px": scene.focal_px}
    examples = examples_for_item(row, scene.depth, scene.normals, meta, EncodeParams())
    assert {e["task"] for e in examples} == {
        "depth",
        "normal",
        "point_segmentation",
        "entity_segmentation",
        "pose",
    }

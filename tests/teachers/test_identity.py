"""The model teacher's identity covers every label parameter but the listed run-only ones."""

from __future__ import annotations

import dataclasses

import pytest

from dicepipe.params.label import GeometryNormalsParams, LabelParams, MarigoldParams
from dicepipe.teachers import identity, make_teacher
from dicepipe.teachers.identity import RUN_ONLY, model_identity, output_settings


def test_todays_identities_are_kept_so_label_caches_stay_valid():
    assert model_identity(LabelParams(), "cpu") == "depth_pro:615d09742002c83d"
    marigold = LabelParams(normals="marigold")
    assert model_identity(marigold, "cpu") == "depth_pro:efd666671795d3e9"
    assert make_teacher(LabelParams(device="cpu")).identity == (
        "auto[ground_truth:v1|depth_pro:615d09742002c83d]"
    )


def test_run_only_names_are_label_parameters():
    for path in RUN_ONLY:  # a stale or misspelt name would exclude nothing
        section: object = LabelParams()
        for name in path.split("."):
            assert name in {f.name for f in dataclasses.fields(section)}, path
            section = getattr(section, name)


def test_every_output_field_changes_the_identity_recursively():
    base = model_identity(LabelParams(), "cpu")
    changed = {
        "normals": LabelParams(normals="none"),
        "weights": LabelParams(weights="/models/depth_pro"),
        "dtype": LabelParams(dtype="float16"),
        "torch_threads": LabelParams(torch_threads=4),
        "geometry.step": LabelParams(geometry=GeometryNormalsParams(step=2)),
        "marigold.seed": LabelParams(marigold=MarigoldParams(seed=1)),
    }
    for name, params in changed.items():
        assert model_identity(params, "cpu") != base, name
    assert model_identity(LabelParams(), "cuda") != base
    same = LabelParams(batch_size=1, num_workers=0, cache_dir="elsewhere", sources=("coco",))
    assert model_identity(same, "cpu") == base


@pytest.mark.parametrize("nested", [False, True])
def test_a_new_field_changes_the_identity_unless_listed_run_only(monkeypatch, nested):
    if nested:  # a field added to a nested section
        section = dataclasses.make_dataclass(
            "Geometry", [("smoothing", int, 0)], bases=(GeometryNormalsParams,), frozen=True
        )
        extended = dataclasses.make_dataclass("Label", [], bases=(LabelParams,), frozen=True)
        old, new = (extended(geometry=section(smoothing=s)) for s in (0, 3))
        path = "geometry.smoothing"
    else:
        extended = dataclasses.make_dataclass(
            "Label", [("sharpen", bool, False)], bases=(LabelParams,), frozen=True
        )
        old, new = extended(), extended(sharpen=True)
        path = "sharpen"
    assert model_identity(old, "cpu") != model_identity(new, "cpu")
    monkeypatch.setattr(identity, "RUN_ONLY", RUN_ONLY | {path})
    assert model_identity(old, "cpu") == model_identity(new, "cpu")
    assert path.split(".")[-1] not in str(output_settings(new))

"""Normals plug-ins (`label.normals: module:factory`): selected by params, used by the label
stage, and their identity reaches the label cache and the unit fingerprints."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dicepipe.codescope import stage_code_version
from dicepipe.config import ConfigError, parse
from dicepipe.imageio import encode_png
from dicepipe.params.label import LabelParams
from dicepipe.params.runner import RunnerParams
from dicepipe.pipeline import label
from dicepipe.records import SAMPLE_SCHEMA
from dicepipe.sources.common import sample_row
from dicepipe.sources.synthetic.render import render_scene
from dicepipe.storage import digest_of, read_fingerprint, sha256_file
from dicepipe.teachers import check_teacher, make_teacher, model_device
from dicepipe.teachers.base import Teacher
from tests.teachers import standin

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from dicepipe.teachers.depth_pro import save_random_depth_pro

    return save_random_depth_pro(tmp_path_factory.mktemp("depth_pro"))


def _unit(tmp_path, total: int = 2):
    rows = [
        sample_row(
            "openimages", f"id{i}", "u", "x", encode_png(render_scene(i, 64, 48).rgb), [], 10**7
        )
        for i in range(total)
    ]
    unit = tmp_path / "samples" / "openimages-000000.parquet"
    unit.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA), unit)
    return unit


def _normals_are(path, direction: list[float]) -> bool:
    """Every labelled pixel of the unit file has the normal `direction`."""
    rows = pq.read_table(path).to_pylist()
    maps = [np.frombuffer(r["normals"], "<f2").reshape(r["height"], r["width"], 3) for r in rows]
    return bool(maps) and all(np.array_equal(n, np.broadcast_to(direction, n.shape)) for n in maps)


def test_the_label_stage_uses_the_plugin_and_its_identity_keys_the_unit(tmp_path, tiny_weights):
    unit, out = _unit(tmp_path), tmp_path / "labels"
    params = LabelParams(
        teacher="depth_pro",
        weights=str(tiny_weights),
        normals=standin.SPEC,
        normals_weights=str(standin.save_weights(tmp_path / "up", (0.0, 0.0, 2.0))),
        cache_dir=str(tmp_path / "cache"),
        num_workers=0,
        device="cpu",
        batch_size=2,
    )
    teacher = make_teacher(params)
    label.run_unit(unit, teacher, params, out)
    assert teacher.identity.startswith("depth_pro:") and "+normals_standin:v1:" in teacher.identity
    assert set(pq.read_table(out / unit.name)["teacher"].to_pylist()) == {teacher.identity}
    assert _normals_are(out / unit.name, [0, 0, 1])
    code = stage_code_version("label")
    fingerprint = digest_of("label", unit.stem, teacher.identity, sha256_file(unit), code)
    assert read_fingerprint(out / unit.name) == fingerprint

    # Other plug-in weights: another identity, so the unit is labelled again, not skipped.
    sideways = standin.save_weights(tmp_path / "side", (1.0, 0.0, 0.0))
    moved = replace(params, normals_weights=str(sideways))
    other = make_teacher(moved)
    assert other.identity != teacher.identity
    label.run_unit(unit, other, moved, out)
    assert read_fingerprint(out / unit.name) != fingerprint
    assert _normals_are(out / unit.name, [1, 0, 0])


def test_auto_fingerprints_follow_the_plugin_settings():
    first = LabelParams(normals=standin.SPEC, normals_weights="weights/a")
    second = replace(first, normals_weights="weights/b")
    assert make_teacher(first).identity != make_teacher(second).identity  # no model loaded


def test_normals_must_be_builtin_or_a_factory_path():
    assert parse({"normals": "pkg.mod:build"}, LabelParams, "label").normals == "pkg.mod:build"
    for bad in ("stablenormal", "pkg.mod", "pkg.mod:", "pkg mod:build"):
        with pytest.raises(ConfigError, match="label: normals"):
            parse({"normals": bad}, LabelParams, "label")


def test_a_plugin_that_does_not_import_stops_the_flow_early():
    with pytest.raises(ImportError, match=r"label.normals 'no_such_module_x:build': cannot import"):
        check_teacher(LabelParams(normals="no_such_module_x:build"))
    with pytest.raises(ImportError, match="has no callable 'missing'"):
        check_teacher(LabelParams(normals="tests.teachers.standin:missing"))
    check_teacher(LabelParams(normals=standin.SPEC))


class _OwnIdentityOnly:
    identity = "normals_mine:v1"

    def label(self, batch):
        return []


def forgets_the_depth_identity(params: LabelParams, depth_teacher: Teacher) -> Teacher:
    """A broken factory: its identity would not change with the depth teacher's."""
    return _OwnIdentityOnly()


def test_a_plugin_identity_must_extend_the_depth_teachers(tmp_path, tiny_weights):
    spec = f"{__name__}:forgets_the_depth_identity"
    params = LabelParams(teacher="depth_pro", weights=str(tiny_weights), normals=spec, device="cpu")
    with pytest.raises(ValueError, match="must contain the depth teacher's"):
        make_teacher(params)


def test_dask_cuda_workers_run_the_teacher_on_their_own_gpu():
    gpus = RunnerParams(kind="dask-cuda")
    assert model_device(LabelParams(runner=gpus)) == "cuda"  # never a silent CPU fallback
    assert model_device(LabelParams(runner=gpus, device="cuda:0")) == "cuda:0"
    stand_in = RunnerParams(kind="dask-cuda", cluster_class="distributed.LocalCluster")
    assert model_device(LabelParams(runner=stand_in)) == "auto"
    assert model_device(LabelParams()) == "auto"
    for device in ("cpu", "cuda:1"):
        with pytest.raises(ConfigError, match="pinned to its own GPU"):
            parse({"device": device, "runner": {"kind": "dask-cuda"}}, LabelParams, "label")

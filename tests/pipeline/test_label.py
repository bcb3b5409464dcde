"""The label stage through the teacher interface: auto routing, Depth Pro, cache, errors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dicepipe.imageio import encode_png
from dicepipe.params.label import LabelParams
from dicepipe.params.runner import RunnerParams
from dicepipe.pipeline import label
from dicepipe.records import SAMPLE_SCHEMA
from dicepipe.sources.common import sample_row
from dicepipe.sources.synthetic.corpus import label_bytes
from dicepipe.sources.synthetic.render import render_scene
from dicepipe.teachers import make_teacher
from dicepipe.teachers.audit_run import run_audit
from dicepipe.teachers.base import TeacherBuildError
from dicepipe.weights import MissingWeightsError
from tests.reliability.craft import rotated_jpeg

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from dicepipe.teachers.depth_pro import save_random_depth_pro

    return save_random_depth_pro(tmp_path_factory.mktemp("depth_pro"))


def _unit(tmp_path, with_exact_labels: int, total: int = 3):
    """A sample unit of rendered scenes; the first `with_exact_labels` ship exact labels."""
    rows = []
    for i in range(total):
        scene = render_scene(100 + i, 64, 48)
        rows.append(sample_row("openimages", f"id{i}", "u", "x", encode_png(scene.rgb), [], 10**7))
        if i < with_exact_labels:
            path = tmp_path / "exact" / "openimages" / f"id{i}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(label_bytes(scene))
    unit = tmp_path / "samples" / "openimages-000000.parquet"
    unit.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA), unit)
    return unit


def _params(tmp_path, **kwargs) -> LabelParams:
    defaults = dict(
        ground_truth_dir=str(tmp_path / "exact"),
        cache_dir=str(tmp_path / "cache"),
        num_workers=0,
        device="cpu",
        batch_size=2,
    )
    return LabelParams(**{**defaults, **kwargs})


def test_auto_uses_exact_labels_without_loading_a_model(tmp_path):
    unit = _unit(tmp_path, with_exact_labels=3)
    params = _params(tmp_path, weights=str(tmp_path / "no-weights-here"))
    manifest = label.run_unit(unit, make_teacher(params), params, tmp_path / "labels")
    assert manifest["rows"] == 3 and manifest["quarantined"] == 0
    teachers = pq.read_table(tmp_path / "labels" / unit.name)["teacher"].to_pylist()
    assert teachers == ["ground_truth:v1"] * 3


def test_auto_stops_with_where_to_put_the_weights(tmp_path):
    unit = _unit(tmp_path, with_exact_labels=1)
    missing = tmp_path / "no-weights-here"
    params = _params(tmp_path, weights=str(missing))
    with pytest.raises(MissingWeightsError) as error:
        label.run_unit(unit, make_teacher(params), params, tmp_path / "labels")
    assert str(missing) in str(error.value) and "label.weights" in str(error.value)
    assert not (tmp_path / "labels" / unit.name).exists()


def test_depth_pro_labels_then_reads_its_cache(tmp_path, tiny_weights):
    unit = _unit(tmp_path, with_exact_labels=1)
    params = _params(tmp_path, teacher="auto", weights=str(tiny_weights))
    first = make_teacher(params)
    label.run_unit(unit, first, params, tmp_path / "labels")
    table = pq.read_table(tmp_path / "labels" / unit.name).to_pylist()
    identities = [row["teacher"] for row in table]
    assert identities[0] == "ground_truth:v1"
    assert all(t.startswith("depth_pro:") and "normals_geometry" in t for t in identities[1:])
    assert label.cache_counts(first) == {"computed": 2, "from_cache": 0}
    second = make_teacher(params)  # a fresh process-level teacher, same identity
    label.run_unit(unit, second, params, tmp_path / "labels-again")
    assert label.cache_counts(second) == {"computed": 0, "from_cache": 2}
    again = pq.read_table(tmp_path / "labels-again" / unit.name)
    assert again.equals(pq.read_table(tmp_path / "labels" / unit.name))


def test_audit_scores_exact_teacher_perfect_and_random_model_poor(tiny_weights):
    exact = run_audit(LabelParams(), "ground_truth", scenes=3, width=64, height=48)
    assert exact["depth"]["absrel"] < 1e-6 and exact["depth"]["delta1"] == 1.0
    assert exact["normals"]["median"] < 0.1
    model = run_audit(LabelParams(weights=str(tiny_weights), device="cpu"), "depth_pro", 3, 64, 48)
    assert model["depth"]["absrel"] > 0.05 and model["normals"]["median"] > 5


def test_the_sample_row_focal_length_reaches_the_teacher(tmp_path, tiny_weights):
    # EXIF-rotated: sample stores a PNG (no EXIF left) and the focal length in the row.
    data = rotated_jpeg(3, orientation=6, f35=50)
    row = sample_row("openimages", "rot", "u", "x", data, [], 10**7)
    assert row["image"].startswith(b"\x89PNG") and row["focal_px"] > 0
    unit = tmp_path / "samples" / "openimages-000000.parquet"
    unit.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row], schema=SAMPLE_SCHEMA), unit)
    params = _params(tmp_path, teacher="depth_pro", weights=str(tiny_weights))
    label.run_unit(unit, make_teacher(params), params, tmp_path / "labels")
    (labelled,) = pq.read_table(tmp_path / "labels" / unit.name).to_pylist()
    assert labelled["focal_px"] == pytest.approx(row["focal_px"], rel=1e-6)


LABEL_UNIT = """
import sys
from pathlib import Path
from dicepipe.params.label import LabelParams
from dicepipe.params.runner import RunnerParams
from dicepipe.pipeline import label
from dicepipe.teachers import make_teacher

unit, weights, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
params = LabelParams(teacher="depth_pro", weights=weights, cache_dir=str(out / "cache"),
                     num_workers=0, device="cpu", batch_size=2)
label.run_unit(unit, make_teacher(params), params, out / "labels")
"""


def test_labels_do_not_depend_on_the_workers_thread_count(tmp_path, tiny_weights):
    import os
    import subprocess
    import sys

    import torch

    unit = _unit(tmp_path, with_exact_labels=0, total=2)
    outs = [tmp_path / "single", tmp_path / "many"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # as in a Dask worker
    args = [sys.executable, "-c", LABEL_UNIT, str(unit), str(tiny_weights), str(outs[0])]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # as in a thread runner's process on two cores
    try:
        params = _params(tmp_path, teacher="depth_pro", weights=str(tiny_weights))
        params = LabelParams(**{**vars(params), "cache_dir": str(outs[1] / "cache")})
        label.run_unit(unit, make_teacher(params), params, outs[1] / "labels")
    finally:
        torch.set_num_threads(before)
    single, many = (pq.read_table(out / "labels" / unit.name) for out in outs)
    assert single.equals(many)
    assert all(":cpu:threads1" in t for t in many["teacher"].to_pylist())


@pytest.mark.skipif(_cuda_available(), reason="the worker's GPU exists here")
def test_a_dask_cuda_worker_without_cuda_stops_instead_of_labelling_on_its_cpu(
    tmp_path, tiny_weights
):
    unit = _unit(tmp_path, with_exact_labels=1)
    gpus = RunnerParams(kind="dask-cuda")
    params = _params(tmp_path, weights=str(tiny_weights), device="auto", runner=gpus)
    with pytest.raises(TeacherBuildError, match="CUDA is not available"):
        label.run_unit(unit, make_teacher(params), params, tmp_path / "labels")
    assert not (tmp_path / "labels" / unit.name).exists()


def test_rows_stream_in_key_order_into_row_groups_of_the_bound(tmp_path, monkeypatch):
    unit = _unit(tmp_path, with_exact_labels=5, total=6)  # id5 ships no label: quarantined
    table = pq.read_table(unit)
    pq.write_table(table.take([3, 0, 5, 1, 4, 2]), unit)  # a unit file not in key order
    params = _params(tmp_path, teacher="ground_truth")
    whole = label.run_unit(unit, make_teacher(params), params, tmp_path / "whole")
    monkeypatch.setattr(label, "ROW_GROUP_BYTES", 1)  # one row per row group
    streamed = label.run_unit(unit, make_teacher(params), params, tmp_path / "streamed")
    assert whole == streamed == {"unit": unit.stem, "rows": 5, "quarantined": 1}
    one, many = (pq.ParquetFile(tmp_path / d / unit.name) for d in ("whole", "streamed"))
    assert (one.num_row_groups, many.num_row_groups) == (1, 5)
    assert one.read().equals(many.read())
    assert one.read()["key"].to_pylist() == [f"openimages/id{i}" for i in range(5)]


def test_a_failing_row_write_leaves_no_file(tmp_path, monkeypatch):
    unit = _unit(tmp_path, with_exact_labels=2, total=2)
    params = _params(tmp_path, teacher="ground_truth")

    row = label.label_row

    def broken(label_):
        return {**row(label_), "width": "wide"}

    monkeypatch.setattr(label, "label_row", broken)
    monkeypatch.setattr(label, "ROW_GROUP_BYTES", 1)
    with pytest.raises(Exception, match="int"):
        label.run_unit(unit, make_teacher(params), params, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.parquet"))
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_a_unit_labels_into_an_object_store_with_its_cache_there(tmp_path, tiny_weights):
    from dicepipe.storage import location, read_table
    from tests.objectstore import s3_server

    unit = _unit(tmp_path, with_exact_labels=1)
    with s3_server() as store:
        cache = f"{store.url}/label-cache"
        params = _params(tmp_path, teacher="auto", weights=str(tiny_weights), cache_dir=cache)
        out = location(f"{store.url}/labels")
        first = make_teacher(params)
        label.run_unit(unit, first, params, out)
        assert label.cache_counts(first) == {"computed": 2, "from_cache": 0}
        second = make_teacher(params)
        label.run_unit(unit, second, params, location(f"{store.url}/labels-again"))
        assert label.cache_counts(second) == {"computed": 0, "from_cache": 2}
        remote = read_table(out / unit.name)
        assert remote.equals(read_table(location(f"{store.url}/labels-again") / unit.name))
        label.run_unit(unit, make_teacher(params), params, tmp_path / "local-labels")
        assert remote.equals(pq.read_table(tmp_path / "local-labels" / unit.name))

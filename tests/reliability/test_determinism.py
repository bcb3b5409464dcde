"""The same seed gives the same bytes, whatever runs the pipeline and however it batches.

Slow, the full matrix: `dvc repro encode` in copies of the project (data stages cut to a few
units, the label teacher a tiny random-weight Depth Pro on the CPU, so labels are model
floats): two runs; threads vs Dask with 2 and 3 workers (every stage's `runner`); and
`label.batch_size` 1 vs 8 (the label stage). Default suite: batch size 1 vs 4 on one unit.

Compared: sha256 of every file under `data/shards` and `data/work`, except, between runners,
`data/work/labels/summary.json`: its `computed`/`from_cache` counts are this process's label
cache counters, which the flow cannot see under Dask (null there).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dicepipe.imageio import encode_png
from dicepipe.params.label import LabelParams
from dicepipe.pipeline import label
from dicepipe.records import SAMPLE_SCHEMA
from dicepipe.sources.common import sample_row
from dicepipe.sources.synthetic.render import render_scene
from dicepipe.teachers import make_teacher
from tests.project import DATA_STAGES, QUICK_DATA, copy_project, data_digests, digests, dvc

RUNNER_DEPENDENT = ("work/labels/summary.json",)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """A random-weight Depth Pro checkpoint of the tiny configuration (128 px input)."""
    from dicepipe.teachers.depth_pro import save_random_depth_pro

    return save_random_depth_pro(tmp_path_factory.mktemp("depth_pro"))


def _label_unit(folder: Path) -> Path:
    """One sample unit of rendered scenes of two sizes (a batch mixes them)."""
    rows = []
    for i in range(8):
        width, height = (96, 72) if i % 2 else (64, 48)
        rgb = encode_png(render_scene(300 + i, width, height).rgb)
        rows.append(sample_row("openimages", f"id{i}", "u", "x", rgb, [], 10**7))
    unit = folder / "samples" / "openimages-000000.parquet"
    unit.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA), unit)
    return unit


@pytest.mark.usefixtures("keep_torch_threads")
def test_the_label_batch_size_does_not_change_model_labels(tmp_path, tiny_weights):
    unit = _label_unit(tmp_path)
    written = {}
    for batch_size in (1, 4):
        params = LabelParams(
            teacher="depth_pro",
            weights=str(tiny_weights),
            cache_dir=str(tmp_path / f"cache-{batch_size}"),  # each batch size computes
            num_workers=0,
            device="cpu",
            batch_size=batch_size,
        )
        out = tmp_path / f"labels-{batch_size}"
        label.run_unit(unit, make_teacher(params), params, out)
        written[batch_size] = digests(out)
    assert written[1] == written[4]
    assert len(pq.read_table(tmp_path / "labels-1" / unit.name)) == 8


# ------------------------------------------------------------------------ the full matrix

Run = Callable[..., Path]


def _runner(kind: str, workers: int) -> dict[tuple[str, ...], dict]:
    return {(stage, "runner"): {"kind": kind, "max_workers": workers} for stage in DATA_STAGES}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_weights) -> Run:
    """`pipeline(name, overrides, target)`: the project copy where `dvc repro TARGET` ran
    with `overrides` on top of the quick data params and the tiny Depth Pro (made once)."""
    teacher = {
        ("label", "teacher"): "depth_pro",
        ("label", "weights"): str(tiny_weights),
        ("label", "device"): "cpu",
    }
    made: dict[str, Path] = {}

    def run(name: str, overrides: dict | None = None, target: str = "encode") -> Path:
        if name not in made:
            root = tmp_path_factory.mktemp(name)
            copy_project(root, {**QUICK_DATA, **teacher, **(overrides or {})})
            dvc("repro", target, cwd=root, timeout=1200)
            made[name] = root
        return made[name]

    return run


@pytest.mark.slow
def test_two_runs_write_the_same_bytes(pipeline):
    first, second = pipeline("threads"), pipeline("threads-again")
    assert data_digests(first) == data_digests(second)
    assert any(path.startswith("shards/") for path in data_digests(first))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 3])
def test_dask_writes_the_bytes_of_threads(pipeline, workers):
    dask = pipeline(f"dask-{workers}", _runner("dask", workers))
    threads = pipeline("threads")
    assert data_digests(dask, RUNNER_DEPENDENT) == data_digests(threads, RUNNER_DEPENDENT)


@pytest.mark.slow
def test_the_label_batch_size_does_not_change_the_label_stage(pipeline):
    single = pipeline("batch-1", {("label", "batch_size"): 1}, target="label")
    batched = pipeline("threads")  # label.batch_size 8
    assert digests(single / "data/work/labels") == digests(batched / "data/work/labels")

"""The label flow under each runner, as `dvc repro` runs it: the dask-cuda code path with a CPU
LocalCluster standing in for LocalCUDACluster (no GPU here), threads, and plain Dask.

Every runner labels every item with the same bytes, and a Dask worker process loads the
teacher once, however many units it labels. The dask-cuda run counts loads with
`normals: tests.teachers.standin:counting_geometry`, the geometry teacher itself (same
identity, same labels) recording each build and batch with its process id. Each flow run
costs ~25 s on two cores (imports, Prefect's API, the cluster), so the runs under threads and
plain Dask are `slow`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from dicepipe.imageio import encode_png
from dicepipe.params.label import LabelParams
from dicepipe.pipeline import label
from dicepipe.records import SAMPLE_SCHEMA
from dicepipe.sources.common import sample_row
from dicepipe.sources.synthetic.render import render_scene
from dicepipe.teachers import make_teacher
from tests.teachers import standin

REPO = Path(__file__).resolve().parents[2]
UNITS, ITEMS = 4, 2
THREADS = {"kind": "threads", "max_workers": 2}
# The dask-cuda path (params, runner, cluster start) with the cluster class swapped: on a GPU
# machine the same params without `cluster_class` start LocalCUDACluster.
STAND_IN = {"kind": "dask-cuda", "max_workers": 2, "cluster_class": "distributed.LocalCluster"}
DASK = {"kind": "dask", "max_workers": 2}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    from dicepipe.teachers.depth_pro import save_random_depth_pro

    return save_random_depth_pro(tmp_path_factory.mktemp("depth_pro"))


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    """UNITS sample units of ITEMS rendered scenes each."""
    folder = tmp_path_factory.mktemp("samples")
    for unit in range(UNITS):
        rows = []
        for item in range(ITEMS):
            rgb = encode_png(render_scene(100 + unit * ITEMS + item, 64, 48).rgb)
            rows.append(sample_row("openimages", f"u{unit}i{item}", "u", "x", rgb, [], 10**7))
        table = pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA)
        pq.write_table(table, folder / f"openimages-{unit:06d}.parquet")
    return folder


def run_label(root: Path, samples: Path, runner: dict, **label) -> Path:
    """Run `flows/label.py` in a fresh process under `runner`; the output folder."""
    root.mkdir(parents=True)
    section = {"sources": ["openimages"], "cache_dir": str(root / "cache"), **label}
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"label": {**section, "runner": runner}}))
    out = root / "labels"
    args = [sys.executable, "flows/label.py", "--params", str(params)]
    args += ["--samples", str(samples), "--out", str(out)]
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, DICEPIPE_CACHE=str(root / "dicepipe-cache"), PYTHONPATH=python_path)
    env[standin.RECORD_ENV] = str(root)
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def unit_tables(out: Path) -> dict[str, pa.Table]:
    """Every unit and quarantine table, by relative path, without the fingerprint metadata
    (it names the code version too, which concurrent edits of the tree change between runs;
    the summary is left out: its cache counts are per process)."""
    return {
        str(path.relative_to(out)): pq.read_table(path).replace_schema_metadata(None)
        for path in sorted(out.rglob("*.parquet"))
    }


def read_labels(out: Path) -> pa.Table:
    """Every unit's label rows."""
    return pa.concat_tables(pq.read_table(path) for path in sorted(out.glob("*.parquet")))


@pytest.fixture(scope="module")
def depth_pro(tiny_weights) -> dict[str, str]:
    """The label params of every run besides the defaults: Depth Pro, tiny random weights."""
    return {"teacher": "depth_pro", "weights": str(tiny_weights)}


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory, samples, depth_pro) -> Path:
    """Labels of the dask-cuda code path; its folder's parent holds the load records."""
    root = tmp_path_factory.mktemp("stand-in")
    return run_label(root / "run", samples, STAND_IN, normals=standin.COUNTING, **depth_pro)


def assert_same_labels(first: Path, second: Path) -> None:
    """Both runs labelled every item, with the same bytes."""
    one, two = unit_tables(first), unit_tables(second)
    assert one.keys() == two.keys()
    assert all(one[name].equals(two[name]) for name in one)  # depth, normals: bytes
    assert len([name for name in one if name.startswith("errors/")]) == UNITS
    labels = read_labels(first)
    assert labels.num_rows == UNITS * ITEMS
    assert all(t.startswith("depth_pro:") for t in labels["teacher"].to_pylist())


def test_each_dask_worker_loads_the_teacher_once(stand_in):
    loads, batches = (standin.recorded(stand_in.parent, what) for what in ("loads", "batches"))
    assert sum(batches.values()) == UNITS  # batch_size 8: one batch per unit
    assert set(loads) == set(batches) and 1 <= len(batches) <= 2  # only the workers labelled
    assert all(count == 1 for count in loads.values())  # once per worker, not per unit
    assert sum(loads.values()) < UNITS


def test_the_dask_cuda_path_labels_as_one_process_does(
    tmp_path, stand_in, samples, depth_pro, keep_torch_threads
):
    params = LabelParams(sources=("openimages",), cache_dir=str(tmp_path / "cache"), **depth_pro)
    teacher = make_teacher(params)
    for unit in sorted(samples.glob("*.parquet")):
        label.run_unit(unit, teacher, params, tmp_path / "labels")
    assert_same_labels(tmp_path / "labels", stand_in)


@pytest.mark.slow
def test_threads_and_dask_runners_write_the_same_labels(tmp_path, stand_in, samples, depth_pro):
    threads = run_label(tmp_path / "threads", samples, THREADS, **depth_pro)
    assert_same_labels(threads, run_label(tmp_path / "dask", samples, DASK, **depth_pro))
    assert_same_labels(threads, stand_in)

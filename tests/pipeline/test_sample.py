"""The sample stage end to end on a small corpus in tmp: runner independence, kill and resume."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils

from dicepipe.config import load_params
from dicepipe.imageio import encode_jpeg
from dicepipe.params.sample import SampleParams
from dicepipe.pipeline import sample

REPO = Path(__file__).resolve().parents[2]
H, W = 48, 64


def _picture(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2) + rng.integers(0, 60, (H, W, 3))
    return encode_jpeg(np.clip(rgb, 0, 255).astype(np.uint8))


def _rle(y0: int, y1: int, x0: int, x1: int) -> dict:
    mask = np.zeros((H, W), np.uint8)
    mask[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [H, W], "counts": rle["counts"].decode()}


def _write_openimages(root: Path) -> None:
    (root / "images").mkdir(parents=True)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["ImageID", "OriginalMD5", "Rotation"])
    for i in range(8):
        image_id, data = f"{i:016x}", _picture(i)
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        stored = data[: len(data) // 2] if i == 3 else data  # one truncated file
        (root / "images" / f"{image_id}.jpg").write_bytes(stored)
        writer.writerow([image_id, md5, "90" if i == 5 else "0"])
    (root / "index.csv").write_text(text.getvalue())


def _write_sa1b(root: Path) -> None:
    root.mkdir(parents=True)
    for t in range(2):
        with tarfile.open(root / f"sa_{t:06d}.tar", "w", format=tarfile.GNU_FORMAT) as archive:
            for i in range(t * 3 + 1, t * 3 + 4):
                masks = [_rle(0, 20, 0, 30), _rle(25, 40, 10, 50), _rle(0, 0, 0, 0)]
                annotations = [
                    {"id": i * 10 + j, "segmentation": m, "stability_score": 0.9}
                    for j, m in enumerate(masks)
                ]
                record = {"image": {"image_id": i}, "annotations": annotations}
                for name, data in ((f"sa_{i}.jpg", _picture(100 + i)), (f"sa_{i}.json", record)):
                    payload = data if isinstance(data, bytes) else json.dumps(data).encode()
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    archive.addfile(info, io.BytesIO(payload))


def _write_coco(root: Path) -> None:
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(1, 4):
        (root / "images" / f"{i:012d}.jpg").write_bytes(_picture(200 + i))
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "width": W, "height": H})
        annotations.append(
            {
                "id": 100 + i,
                "image_id": i,
                "category_id": 1,
                "segmentation": [[5, 5, 30, 5, 30, 40, 5, 40]],
                "bbox": [5, 5, 25, 35],
                "iscrowd": 0,
                "keypoints": [10, 10, 2, 20, 12, 2],
                "num_keypoints": 2,
            }
        )
    categories = [{"id": 1, "name": "person", "keypoints": ["a", "b"], "skeleton": [[1, 2]]}]
    document = {"images": images, "annotations": annotations, "categories": categories}
    (root / "keypoints.json").write_text(json.dumps(document))


def _write_params(root: Path, kind: str) -> Path:
    section = {
        "seed": 3,
        "max_pixels": 10**6,
        "openimages": {
            "index": str(root / "openimages/index.csv"),
            "images": str(root / "openimages/images"),
            "n": 8,
            "block_rows": 3,
        },
        "sa1b": {"tars": [str(root / "sa1b/sa_*.tar")], "n": 6, "max_annotations": 1},
        "coco": [
            {
                "annotations": str(root / "coco/keypoints.json"),
                "images": str(root / "coco/images"),
                "n": 3,
                "block_images": 2,
            }
        ],
        "runner": {"kind": kind, "max_workers": 2},
    }
    path = root / f"params-{kind}.yaml"
    path.write_text(yaml.safe_dump({"sample": section}))
    return path


def _run_flow(params: Path, out: Path) -> None:
    env = dict(os.environ, DICEPIPE_CACHE=str(out.parent / "cache"))
    args = [sys.executable, "flows/sample.py", "--params", str(params), "--out", str(out)]
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _digests(out: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def _mtimes(out: Path) -> dict[str, int]:
    """Modification times of the unit files (not of the listings, written once at planning)."""
    paths = (p for p in out.rglob("*.parquet") if sample.LISTINGS_DIR not in p.parts)
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in paths}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    _write_openimages(root / "openimages")
    _write_sa1b(root / "sa1b")
    _write_coco(root / "coco")
    return root


@pytest.fixture(scope="module")
def flow_outputs(corpus) -> dict[str, Path]:
    outs = {}
    for kind in ("threads", "dask"):
        outs[kind] = corpus / f"out-{kind}"
        _run_flow(_write_params(corpus, kind), outs[kind])
    return outs


def test_threads_and_dask_write_identical_bytes(flow_outputs):
    threads, dask = (_digests(flow_outputs[k]) for k in ("threads", "dask"))
    assert threads == dask
    units = [n for n in threads if n.endswith(".parquet") and not n.startswith("listings/")]
    assert len(units) == 3 * 7
    listings = [n for n in threads if n.startswith("listings/")]
    assert len(listings) == 2 + 1 + 2  # two tar listings, a COCO file's pointer and index


def test_summary_accounts_for_every_item(flow_outputs):
    summary = json.loads((flow_outputs["threads"] / "summary.json").read_text())
    assert summary["balanced"] and summary["items"] == 8 + 6 + 3
    assert summary["reasons"] == {"truncated": 1}
    out, dropped = flow_outputs["threads"], Counter()
    for path in sorted((out / "notes").glob("*.parquet")):
        dropped.update(sample.note_counts(out, path.stem))
    assert dropped == {"empty_mask": 6, "max_annotations": 6}


KILLER = """
import os, signal, sys
from pathlib import Path
from dicepipe.config import load_params
from dicepipe.params.sample import SampleParams
from dicepipe.pipeline import sample
params, out, victim = load_params(SampleParams, sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
real = sample.read_unit
def dying(unit, params):
    for number, outcome in enumerate(real(unit, params)):
        if unit.name == victim and number == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-write: no cleanup runs
        yield outcome
sample.read_unit = dying
for unit in sample.plan(params, out):
    sample.run_unit(unit, params, out)
"""


def _rerun(params: Path, out: Path) -> None:
    loaded = load_params(SampleParams, params)
    for unit in sample.plan(loaded, out):
        sample.run_unit(unit, loaded, out)


def test_a_killed_run_resumes_to_the_same_bytes(corpus, flow_outputs, tmp_path):
    params, out = corpus / "params-threads.yaml", tmp_path / "out"
    names = [unit.name for unit in sample.plan(load_params(SampleParams, params))]
    victim = names[3]
    args = [sys.executable, "-c", KILLER, str(params), str(out), victim]
    killed = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert list(out.glob(f".{victim}.parquet.*.tmp"))  # killed inside the atomic write
    assert not (out / f"{victim}.parquet").exists()
    before = _mtimes(out)
    assert {Path(p).stem for p in before} == set(names[:3])
    _rerun(params, out)
    assert not list(out.rglob("*.tmp"))
    after = _mtimes(out)
    assert {p: after[p] for p in before} == before  # finished units were not redone
    assert _digests(out) == _digests(flow_outputs["threads"], skip=("summary.json",))


def test_damaged_units_and_only_they_are_rewritten(corpus, flow_outputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(flow_outputs["threads"], out)
    (out / "summary.json").unlink()
    (out / "openimages-000001.parquet").unlink()
    rows = out / "coco-000000.parquet"
    rows.write_bytes(rows.read_bytes()[:100])  # corrupt: unreadable, so no fingerprint
    (out / "notes" / "sa1b-sa_000001.parquet").unlink()
    before = _mtimes(out)
    _rerun(corpus / "params-threads.yaml", out)
    after = _mtimes(out)
    changed = {Path(p).stem for p in after if before.get(p) != after[p]}
    assert changed == {"openimages-000001", "coco-000000", "sa1b-sa_000001"}
    assert _digests(out) == _digests(flow_outputs["threads"], skip=("summary.json",))

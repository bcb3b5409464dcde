"""End to end: `dvc repro` on the embedded sample in a temporary copy of the project."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from dicepipe.tasks import SHARD_TASKS
from tests.project import QUICK_REPRO
from tests.project import run as _run


@pytest.fixture(scope="module")
def project(repro_project) -> Path:
    """The test run's `dvc repro` of the sample (QUICK_REPRO); the tests below change it."""
    return repro_project.root


def test_repro_writes_loadable_shards_with_a_true_manifest(project):
    import datasets

    from dicepipe.shards.manifest import read_manifest, verify_manifest

    manifest = read_manifest(project / "data/shards")
    assert verify_manifest(project / "data/shards") == []
    assert set(manifest["tasks"]) == set(SHARD_TASKS)
    # what the loader needs to mirror the entity targets params.yaml colours by layout
    assert manifest["instance_colors"] == {"scheme": "layout", "channel_floor": 47}
    files = sorted(str(p) for p in (project / "data/shards").glob("*.parquet"))
    loaded = datasets.load_dataset("parquet", data_files=files, split="train")
    assert len(loaded) == manifest["rows"]
    row = loaded[0]
    assert row["image"].size == (row["width"], row["height"]) == row["target"].size


def test_repro_trains_and_evaluates_the_model_beside_the_baselines(project):
    from dicepipe.model import DiceptionModel

    model = DiceptionModel.from_pretrained(str(project / "runs/train/model"))
    assert model.tasks[:2] == ("depth", "normal") or list(model.tasks)[:2] == ["depth", "normal"]
    train = json.loads((project / "metrics/train.json").read_text())
    assert train["steps"] == QUICK_REPRO[("train", "steps")]
    evaluation = json.loads((project / "metrics/eval.json").read_text())
    for task in ("depth", "normal", "point_segmentation", "entity_segmentation", "pose"):
        assert {"model", "baseline"} <= set(evaluation["heldout"][task])
    shown = _run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], project)
    assert "absrel" in shown
    assert (project / "runs/train/loss.png").stat().st_size > 5_000


def test_every_selected_item_is_accounted_for(project):
    summary = json.loads((project / "data/work/encode/summary.json").read_text())
    assert summary["balanced"]
    assert summary["quarantined"]["sample"] >= 1  # the corpus ships a truncated JPEG
    sample = json.loads((project / "data/work/samples/summary.json").read_text())
    assert sample["reasons"].get("truncated", 0) >= 1


def test_composites_land_in_the_shards_with_points_on_their_mask(project):
    import numpy as np

    from dicepipe.imageio import decode_image

    summary = json.loads((project / "data/work/composites/summary.json").read_text())
    assert summary["rows"] == summary["count"] > 0 and summary["balanced"]
    assert summary["foregrounds"]["reasons"] == {"missing_alpha": 1, "size_mismatch": 1}
    assert (project / "data/work/composites/preview.png").stat().st_size > 10_000
    shard = pq.read_table(project / "data/shards/composite-000000-000.parquet").to_pylist()
    assert {row["source"] for row in shard} <= {"p3m", "am2k", "aim500"}
    for row in shard:
        target = decode_image(row["target"]["bytes"]).rgb
        assert row["task"] == "point_segmentation" and 1 <= len(row["points"]) <= 5
        for x, y in row["points"]:
            assert target[int(y * row["height"]), int(x * row["width"])].tolist() == [255] * 3
        assert np.isin(target, (0, 255)).all()


def test_encoding_again_from_scratch_gives_the_same_bytes(project, tmp_path):
    from dicepipe.shards.manifest import read_manifest

    fresh = tmp_path / "shards"
    _run(
        [sys.executable, "flows/encode.py", "--shards", str(fresh), "--work", str(tmp_path / "w")],
        project,
    )
    original = read_manifest(project / "data/shards")
    assert read_manifest(fresh)["shards"] == original["shards"]
    for name in ("preview-depth.png",):
        assert (fresh / name).read_bytes() == (project / "data/shards" / name).read_bytes()


def test_second_repro_has_nothing_to_do(project):
    output = _run([sys.executable, "-m", "dvc", "repro"], project)
    assert "Running stage" not in output


def test_a_checkout_with_new_file_times_keeps_the_samples_hash(project):
    """Listings are keyed by mtime: a re-run of `sample` on touched inputs writes new ones,
    which `.dvcignore` keeps out of the output's hash, so nothing downstream re-runs."""
    listings = project / "data/work/samples/listings"
    before = set(listings.iterdir())
    later = time.time() + 60
    for path in (project / "data/sample").rglob("*"):
        if path.suffix in {".json", ".tar"}:
            os.utime(path, (later, later))
    _run([sys.executable, "-m", "dvc", "repro", "-f", "-s", "sample"], project)
    assert set(listings.iterdir()) > before  # new identities, new listings
    status = json.loads(_run([sys.executable, "-m", "dvc", "status", "--json"], project))
    assert not {"sample", "label", "composite", "encode"} & set(status)


# `dvc repro` in this interpreter with an audit hook listing every file it opens under data/.
AUDITED_REPRO = """
import json, os, sys
data = os.path.join(os.getcwd(), "data") + os.sep
opened = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.abspath(os.fsdecode(args[0]))
        inside = path.startswith(data) and not path.startswith(os.path.join(data, "sample"))
        if inside and os.path.basename(path) != ".gitignore":
            opened.add(path)
sys.addaudithook(hook)
from dvc.cli import main
code = main(["repro"])
print("OPENED " + json.dumps(sorted(opened)))
sys.exit(code)
"""


def test_a_no_op_repro_reads_no_data_bytes(project):
    output = _run([sys.executable, "-c", AUDITED_REPRO], project)
    assert "Running stage" not in output
    opened = json.loads(output.split("OPENED ", 1)[1].splitlines()[0])
    assert opened == []  # DVC's state database answers every hash; no data file is opened


def test_intermediate_data_stays_out_of_the_dvc_cache(project):
    cached = {p.name for p in (project / ".dvc" / "cache").rglob("*") if p.is_file()}
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    samples = next(o for o in lock["sample"]["outs"] if o["path"] == "data/work/samples")
    shards = next(o for o in lock["encode"]["outs"] if o["path"] == "data/shards")
    assert samples["md5"].endswith(".dir") and shards["md5"].endswith(".dir")
    assert samples["md5"][2:] not in cached  # hashed, not copied
    assert shards["md5"][2:] in cached  # the shards are, to be pushed to a remote


def test_the_shards_push_to_a_remote_and_pull_on_another_machine(project, tmp_path):
    import shutil

    from dicepipe.shards.manifest import verify_manifest
    from tests.objectstore import s3_server

    dvc = [sys.executable, "-m", "dvc"]
    with s3_server() as store:
        _run([*dvc, "remote", "add", "--local", "-d", "bucket", f"{store.url}/dvc"], project)
        _run(
            [*dvc, "remote", "modify", "--local", "bucket", "endpointurl", store.endpoint], project
        )
        try:
            _run([*dvc, "push", "encode"], project)
            other = tmp_path / "other-machine"  # the files git would bring, and the remote
            other.mkdir()
            for name in ("dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore"):
                shutil.copy2(project / name, other / name)
            _run(["git", "init", "-q"], other)
            _run([*dvc, "init", "-q"], other)
            shutil.copy2(project / ".dvc" / "config.local", other / ".dvc" / "config.local")
            _run([*dvc, "pull", "data/shards"], other)
        finally:
            (project / ".dvc" / "config.local").unlink()
    assert verify_manifest(other / "data/shards") == []
    pulled = sorted(p.name for p in (other / "data/shards").glob("*.parquet"))
    assert pulled == sorted(p.name for p in (project / "data/shards").glob("*.parquet"))
    assert not (other / "data/work").exists()  # intermediate data is never pushed


def test_changing_an_encode_param_reruns_only_encode(project):
    params_path = project / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["encode"]["depth"]["space"] = "depth"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    before = {
        p.name: p.stat().st_mtime_ns for p in (project / "data/work/labels").glob("*.parquet")
    }
    # `repro encode`: the stage and what it depends on; training on the new shards adds
    # minutes and nothing to what this checks
    output = _run([sys.executable, "-m", "dvc", "repro", "encode"], project)
    assert "Running stage 'encode'" in output
    for upstream in ("sample", "label", "composite"):
        assert f"Running stage '{upstream}'" not in output
    after = {p.name: p.stat().st_mtime_ns for p in (project / "data/work/labels").glob("*.parquet")}
    assert before == after


def test_dvc_status_follows_each_stage_code_scope(project):
    loader = project / "src/dicepipe/train/loader.py"
    coco = project / "src/dicepipe/sources/coco.py"
    originals = {path: path.read_bytes() for path in (loader, coco)}
    try:
        loader.write_bytes(originals[loader] + b"\n# training code edited\n")
        status = json.loads(_run([sys.executable, "-m", "dvc", "status", "--json"], project))
        assert not {"sample", "label", "composite", "encode"} & set(status)
        assert "train" in status  # the training stage runs the loader
        coco.write_bytes(originals[coco] + b"\n# sampling code edited\n")
        changed = json.loads(_run([sys.executable, "-m", "dvc", "status", "--json"], project))
        assert "sample" in changed and "encode" not in changed
    finally:
        for path, data in originals.items():
            path.write_bytes(data)

"""The bad-input corpus through sample -> label -> composite -> encode, then `datasets`.

No stage raises; every bad item ends in one quarantine table with the reason of its fault;
good items beside them reach the shards unchanged; the counts add up; the shards load with
`datasets.load_dataset` and `dicepipe inspect` finds nothing wrong.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dicepipe.pipeline import composite, encode, label, sample
from dicepipe.pipeline.summary import item_accounting, sample_summary
from dicepipe.pipeline.units import read_quarantine
from dicepipe.shards.card import write_card
from dicepipe.shards.manifest import write_manifest
from dicepipe.teachers import make_teacher
from tests.reliability.corpus import build_corpus

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


STAGES = ("sample", "label", "composite", "encode")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    corpus = build_corpus(root / "in")
    out = {name: root / "out" / name for name in (*STAGES, "shards")}
    units = sample.plan(corpus.sample)
    manifests = [sample.run_unit(unit, corpus.sample, out["sample"]) for unit in units]
    teacher = make_teacher(corpus.label)
    for path in label.plan(corpus.label, out["sample"]):
        label.run_unit(path, teacher, corpus.label, out["label"])
    params = corpus.composite
    refs = composite.foreground_refs(params)
    fg_errors = out["composite"] / "foregrounds" / "errors.parquet"
    good = set(composite.check_foregrounds(refs, root / "cache", fg_errors))
    usable = [(r, ref) for r, ref in refs if ref.key in good]
    backgrounds = composite.background_pool(params, out["sample"])
    pool = composite.write_pool(backgrounds, out["composite"] / "pool", out["sample"])
    for block in composite.plan(params):
        composite.run_unit(block, params, usable, pool, root / "cache", out["composite"])
    results = [
        encode.run_unit(path, out["label"], corpus.encode, out["shards"], out["encode"])
        for path in encode.plan(out["sample"], out["composite"])
    ]
    entries = [entry for result in results for entry in result["shards"]]
    manifest = write_manifest(out["shards"], entries)
    accounting = item_accounting(*(out[s] for s in STAGES), out["shards"])
    write_card(out["shards"], manifest, corpus.encode, accounting)
    return {
        "corpus": corpus,
        "out": out,
        "sample_summary": sample_summary(manifests, out["sample"]),
        "accounting": accounting,
        "manifest": manifest,
        "foreground_errors": pq.read_table(fg_errors).to_pylist(),
    }


def _quarantined(out: dict[str, Path]) -> dict[str, list[tuple[str, str, str]]]:
    found: dict[str, list[tuple[str, str, str]]] = {}
    for stage in STAGES:
        for row in read_quarantine(out[stage]).to_pylist():
            found.setdefault(row["key"], []).append((stage, row["reason"], row["message"]))
    return found


def _shard_rows(out: dict[str, Path]) -> list[dict]:
    return [
        row
        for path in sorted(out["shards"].glob("*.parquet"))
        for row in pq.read_table(path).to_pylist()
    ]


def test_the_corpus_is_large_and_varied(run):
    cases = run["corpus"].cases + run["corpus"].foreground_cases
    kinds = {case.kind for case in cases if case.stage is not None}
    assert len(kinds) >= 60, len(kinds)
    assert len({case.key for case in cases}) == len(cases)


def test_every_bad_item_is_quarantined_once_with_the_reason_of_its_fault(run):
    found = _quarantined(run["out"])
    expected = {c.key: (c.stage, c.reason) for c in run["corpus"].cases if c.stage is not None}
    got = {key: (rows[0][0], rows[0][1]) for key, rows in found.items()}
    assert got == expected
    assert all(len(rows) == 1 and rows[0][2] for rows in found.values())  # once, with a message


def test_good_items_reach_the_shards_unchanged(run):
    rows = _shard_rows(run["out"])
    keys = {row["key"] for row in rows}
    good = {c.key for c in run["corpus"].cases if c.stage is None}
    bad = {c.key for c in run["corpus"].cases if c.stage is not None}
    assert good <= keys and not (bad & keys)
    root = run["corpus"].root
    originals = {
        "openimages/oi_good1": root / "openimages/images/oi_good1.jpg",
        "coco/000000000001": root / "coco/images/000000000001.jpg",
    }
    by_key = {row["key"]: row for row in rows}
    for key, path in originals.items():
        assert by_key[key]["image"]["bytes"] == path.read_bytes()  # kept byte for byte
    tasks = {(row["key"], row["task"]) for row in rows}
    assert ("coco/000000000001", "pose") in tasks and ("sa1b/sa_2", "entity_segmentation") in tasks


def test_counts_add_up(run):
    summary, accounting = run["sample_summary"], run["accounting"]
    assert summary["balanced"] and accounting["balanced"]
    cases = run["corpus"].cases
    assert summary["items"] == len(cases)
    assert accounting["selected"] == len(cases) + run["corpus"].composite.count
    quarantined = sum(accounting["quarantined"].values())
    assert accounting["in_shards"] + quarantined == accounting["selected"]


def test_bad_foregrounds_are_quarantined_and_composites_made(run):
    errors = {row["key"]: row["reason"] for row in run["foreground_errors"]}
    expected = {c.key: c.reason for c in run["corpus"].foreground_cases if c.stage is not None}
    assert errors == expected
    made = [row for row in _shard_rows(run["out"]) if row["key"].startswith("composite/")]
    assert len(made) == run["corpus"].composite.count


def test_the_shards_load_with_datasets_and_inspect_is_clean(run, capsys):
    import datasets

    from dicepipe.cli import main

    shards = run["out"]["shards"]
    files = sorted(str(p) for p in shards.glob("*.parquet"))
    loaded = datasets.load_dataset("parquet", data_files=files, split="train")
    assert len(loaded) == run["manifest"]["rows"] > 0
    assert all(entry["rows"] > 0 for entry in run["manifest"]["shards"])
    assert main(["inspect", str(shards)]) == 0
    assert "sha256 verified" in capsys.readouterr().out


FLOWS = Path(__file__).resolve().parents[2] / "flows"


def _params_yaml(corpus, path: Path) -> None:
    import dataclasses
    import json

    import yaml

    sections = {
        name: json.loads(json.dumps(dataclasses.asdict(getattr(corpus, name)))) for name in STAGES
    }
    path.write_text(yaml.safe_dump(sections))


@pytest.mark.slow
def test_every_stage_command_exits_zero_on_the_corpus(tmp_path):
    import json
    import os
    import subprocess
    import sys

    corpus = build_corpus(tmp_path / "in")
    params = tmp_path / "params.yaml"
    _params_yaml(corpus, params)
    out = tmp_path / "out"
    folders = {
        "sample": {"out": out / "samples"},
        "label": {"samples": out / "samples", "out": out / "labels"},
        "composite": {"samples": out / "samples", "out": out / "composites"},
        "encode": {
            "samples": out / "samples",
            "labels": out / "labels",
            "composites": out / "composites",
            "shards": out / "shards",
            "work": out / "encode",
        },
    }
    env = dict(os.environ, DICEPIPE_CACHE=str(tmp_path / ".cache"))
    for stage, named in folders.items():
        args = [sys.executable, str(FLOWS / f"{stage}.py"), "--params", str(params)]
        args += [item for name, folder in named.items() for item in (f"--{name}", str(folder))]
        done = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (stage, done.stdout[-3000:], done.stderr[-3000:])
    summary = json.loads((out / "encode" / "summary.json").read_text())
    assert summary["balanced"] and summary["selected"] == len(corpus.cases) + 4
    inspect = [sys.executable, "-m", "dicepipe.cli", "inspect", str(out / "shards")]
    done = subprocess.run(inspect, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "sha256 verified" in done.stdout, done.stdout[-2000:]

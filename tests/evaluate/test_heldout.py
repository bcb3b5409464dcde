"""Held-out synthetic scenes: exact labels, and never a scene the model trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dicepipe.config import load_params
from dicepipe.evaluate.heldout import (
    HeldoutLeakError,
    check_heldout,
    heldout_ids,
    read_heldout,
    render_seeds,
    shard_synthetic_ids,
    split_ids,
    training_overlap,
)
from dicepipe.params.evaluate import HeldoutParams
from dicepipe.params.sample import SampleParams
from dicepipe.sources.synthetic.scenes import plan_units

REPO = Path(__file__).resolve().parents[2]
SHARDS = REPO / "data" / "shards"


def test_no_heldout_render_seed_is_in_the_training_split_of_the_same_seed():
    for seed in (0, 1, 7):
        heldout = heldout_ids(HeldoutParams(n=500, seed=seed))
        training = split_ids(seed, 5000, "train")
        assert len(render_seeds(heldout)) == 500 and len(render_seeds(training)) == 5000
        assert not training_overlap(heldout, training)
        assert not {h.split(".")[1] for h in heldout} & {t.split(".")[1] for t in training}


def test_the_training_ids_are_those_the_sample_stage_plans():
    sample = load_params(SampleParams, REPO / "params.yaml")
    planned = [i for unit in plan_units(sample.synthetic, sample.seed) for i, _ in unit.items]
    assert (
        planned
        == split_ids(sample.seed, sample.synthetic.n, "train", sample.synthetic.people_prob)[
            : len(planned)
        ]
    )
    assert not training_overlap(heldout_ids(HeldoutParams(seed=sample.seed)), planned)


@pytest.mark.skipif(not SHARDS.is_dir(), reason="no data/shards (run the encode stage)")
def test_no_heldout_scene_is_in_the_shards():
    trained = shard_synthetic_ids(SHARDS)
    if not trained:
        pytest.skip("the shards hold no synthetic rows")
    params = HeldoutParams(n=1000, seed=load_params(SampleParams, REPO / "params.yaml").seed)
    assert not training_overlap(heldout_ids(params), [], SHARDS)
    check_heldout(params, SHARDS)


def _shard(path: Path, source_ids: list[str]) -> None:
    table = pa.table(
        {"source": ["synthetic"] * len(source_ids) + ["coco"], "source_id": [*source_ids, "7"]}
    )
    pq.write_table(table, path)


def test_a_heldout_scene_in_the_shards_is_refused(tmp_path):
    params = HeldoutParams(n=4)
    _shard(tmp_path / "synthetic-train-0.parquet", split_ids(0, 3, "train"))
    check_heldout(params, tmp_path)  # training scenes only: fine
    _shard(tmp_path / "synthetic-leak-0.parquet", [heldout_ids(params)[2]])
    with pytest.raises(HeldoutLeakError, match="held-out scenes are in the training shards"):
        check_heldout(params, tmp_path)
    check_heldout(params, tmp_path / "missing")  # no shards: nothing to compare


def test_heldout_samples_carry_exact_labels():
    params = HeldoutParams(n=3, width=48, height=36, people_prob=1.0)
    samples = list(read_heldout(params))
    assert [s.name for s in samples] == [f"synthetic/{i}" for i in heldout_ids(params)]
    for sample in samples:
        assert sample.benchmark == "heldout" and sample.rgb.shape == (36, 48, 3)
        assert sample.depth is not None and sample.valid is not None and sample.valid.all()
        assert (sample.depth > 0).all() and sample.normals is not None
        np.testing.assert_allclose(np.linalg.norm(sample.normals, axis=-1), 1.0, atol=1e-5)
        masks = sample.instances.masks
        assert masks.shape[1:] == (36, 48) and (masks.sum(axis=0) == 1).all()  # a partition
        np.testing.assert_array_equal(sample.instances.areas, masks.sum(axis=(1, 2)))
        assert sample.people.keypoints.shape[1:] == (17, 3)
        assert len(sample.people.areas) == len(sample.people.keypoints) >= 1
    assert len(list(read_heldout(params, limit=2))) == 2

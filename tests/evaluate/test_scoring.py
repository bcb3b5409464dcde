"""The scoring path on perfect predictions (the ground truth itself, or drawn as targets and
decoded), and the trivial baselines beside it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dicepipe.evaluate.baselines import build_baselines
from dicepipe.evaluate.dense import DepthScorer, NormalScorer
from dicepipe.evaluate.heldout import read_heldout
from dicepipe.evaluate.objects import PointScorer
from dicepipe.evaluate.run import evaluate_oracle
from dicepipe.evaluate.scoring import Query
from dicepipe.params.evaluate import BaselineParams, HeldoutParams
from tests.evaluate.tiny import EVAL_TASKS, fast_params


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    root = tmp_path_factory.mktemp("oracle")
    heldout = HeldoutParams(n=3, width=192, height=144, people_prob=1.0)
    return evaluate_oracle(fast_params(root, heldout=heldout, max_prompted_masks=4))


def test_exact_depth_and_normals_score_perfectly(tmp_path):
    params = fast_params(tmp_path)
    baselines = build_baselines(params.baseline, params.heldout)
    sample = next(read_heldout(params.heldout))
    for space in ("disparity", "depth"):
        depth = DepthScorer(params, baselines, "heldout").score(sample, sample.depth, space)
        assert depth["absrel"] == pytest.approx(0.0, abs=1e-9) and depth["delta1"] == 1.0
    normals = NormalScorer(params, baselines, "heldout")
    normals.errors["model"].append(np.zeros(4, np.float32))  # errors of exact normals
    normals.errors["baseline"].append(np.full(4, 30.0, np.float32))
    summary = normals.summary()
    assert summary["model"]["pooled_mean"] == 0.0 and summary["model"]["per_image_pct_5"] == 100
    assert summary["baseline"]["pooled_pct_30"] == 0.0


def test_ground_truth_drawn_as_targets_scores_near_perfectly(oracle):
    figures = oracle.metrics["heldout"]
    assert set(figures) == set(EVAL_TASKS)
    depth = figures["depth"]["model"]  # 8-bit quantisation, 2%/98% quantile clipping
    assert depth["absrel"] < 0.01 and depth["delta1"] > 0.99 and depth["n_images"] == 3
    assert figures["normal"]["model"]["pooled_mean"] < 1.0  # 8-bit quantisation only
    point = figures["point_segmentation"]["model"]
    assert point["miou_1pt"] == point["miou_5pt"] == 1.0 and point["count_1pt"] == 12
    assert figures["entity_segmentation"]["model"]["AP"] > 0.9  # Algorithm 2
    assert figures["pose"]["model"]["AP"] > 0.4  # Algorithm 1 on figures ~60 px tall
    assert all(figures[task]["model"]["empty_predictions"] == 0.0 for task in EVAL_TASKS)


def test_the_baselines_are_scored_beside_and_trail_a_perfect_model(oracle):
    for task, figures in oracle.metrics["heldout"].items():
        assert set(figures) == {"model", "baseline"}, task
    figures = oracle.metrics["heldout"]
    assert figures["depth"]["baseline"]["absrel"] > 10 * figures["depth"]["model"]["absrel"]
    assert figures["normal"]["baseline"]["pooled_mean"] > 20
    point = figures["point_segmentation"]["baseline"]
    assert 0 < point["miou_1pt"] < point["miou_5pt"] < 1  # more discs cover more of the mask
    assert figures["entity_segmentation"]["baseline"]["AP"] < 0.5
    assert figures["pose"]["baseline"]["AP"] == 0.0
    assert set(oracle.info["baselines"]) == set(EVAL_TASKS)


def test_previews_and_rows_name_every_task(oracle):
    assert set(oracle.previews) == set(EVAL_TASKS)
    for rows in oracle.previews.values():
        assert len(rows) == 2 and all(len(row) == 3 for row in rows)  # input | target | pred
    tasks = {row["task"] for row in oracle.rows}
    assert tasks == set(EVAL_TASKS) and {row["system"] for row in oracle.rows} == {
        "model",
        "baseline",
    }


def test_prompt_points_are_prefixes_of_one_seeded_draw(tmp_path):
    params = fast_params(tmp_path)
    baselines = build_baselines(params.baseline, params.heldout)
    sample = next(read_heldout(params.heldout))
    scorer = PointScorer(params, baselines, "heldout")
    queries = scorer.queries(0, sample)
    assert [q.k for q in queries[:2]] == [1, 5] and len(queries) == 2 * 3
    one, five = queries[0], queries[1]
    np.testing.assert_array_equal(one.points, five.points[:1])
    masks = sample.instances.masks
    for query in queries:
        height, width = masks.shape[1:]
        cols = (query.points[:, 0] * width).astype(int)
        rows = (query.points[:, 1] * height).astype(int)
        assert masks[query.obj][rows, cols].all()  # every point inside its mask
    again = PointScorer(params, baselines, "heldout").queries(0, sample)
    np.testing.assert_array_equal(again[3].points, queries[3].points)


def test_baseline_shapes_and_disc_geometry(tmp_path):
    params = fast_params(tmp_path, baseline=BaselineParams(scenes=2, disc_radius=0.25))
    baselines = build_baselines(params.baseline, params.heldout)
    assert baselines.depth.shape == (24, 32) and (baselines.depth > 0).all()
    assert baselines.depth_map((48, 64)).shape == (48, 64)
    assert np.linalg.norm(baselines.normal) == pytest.approx(1.0, abs=1e-6)
    assert baselines.normal_map((5, 6)).shape == (5, 6, 3)
    disc = baselines.point_mask(np.array([[0.5, 0.5]]), (40, 40))
    assert disc[20, 20] and not disc[0, 0] and abs(disc.sum() - np.pi * 100) < 20
    assert baselines.entity_masks((3, 4))[0][0].all()
    none = build_baselines(BaselineParams(scenes=1, entity="none"), params.heldout)
    assert none.entity_masks((3, 4)) == ([], [])
    assert Query(0, "depth").item == "" and Query(0, "x", obj=2, k=5).item == "mask2/5pt"


def _target_shard(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dicepipe.imageio import encode_png

    table = pa.table(
        {
            "task": [task for task, _, _ in rows],
            "target": [{"bytes": encode_png(rgb), "path": None} for _, rgb, _ in rows],
            "meta": [json.dumps(meta) for _, _, meta in rows],
        }
    )
    pq.write_table(table, path)


def test_the_shards_baseline_averages_decoded_depth_and_normal_targets(tmp_path):
    from dicepipe.targets.depth import encode_depth
    from dicepipe.targets.normals import encode_normals

    near = np.full((36, 48), 2.0, np.float32)
    near[:, 24:] = 4.0
    up = np.zeros((36, 48, 3), np.float32)
    up[..., 1] = 1.0
    rows = [
        ("depth", *encode_depth(near, quantiles=(0.0, 1.0))),
        ("depth", *encode_depth(near * 2, quantiles=(0.0, 1.0))),
        ("normal", encode_normals(up), {}),
        ("pose", np.zeros((36, 48, 3), np.uint8), {}),
    ]
    _target_shard(tmp_path / "a.parquet", rows)
    heldout = HeldoutParams(width=24, height=18)
    baselines = build_baselines(BaselineParams(source="shards", shards=str(tmp_path)), heldout)
    assert baselines.depth.shape == (18, 24) and "shards" in baselines.source
    assert baselines.depth[0, 0] == pytest.approx(3.0, rel=0.02)  # mean of 2 m and 4 m
    assert baselines.depth[0, -1] == pytest.approx(6.0, rel=0.02)
    np.testing.assert_allclose(baselines.normal, [0.0, 1.0, 0.0], atol=1e-2)
    empty = tmp_path / "empty"
    empty.mkdir()
    _target_shard(empty / "b.parquet", rows[3:])
    with pytest.raises(ValueError, match="no depth and normal targets"):
        build_baselines(BaselineParams(source="shards", shards=str(empty)), heldout)


def test_layout_coloured_entity_targets_decode_as_well(tmp_path):
    from dicepipe.evaluate.objects import EntityScorer

    heldout = HeldoutParams(n=2, width=192, height=144, people_prob=1.0)
    params = fast_params(tmp_path, heldout=heldout, entity_colors="layout")
    baselines = build_baselines(params.baseline, params.heldout)
    scorer = EntityScorer(params, baselines, "heldout")
    for index, sample in enumerate(read_heldout(params.heldout)):
        for query in scorer.queries(index, sample):
            target = scorer.target(sample, query)
            colours = {tuple(c) for c in target.reshape(-1, 3)} - {(0, 0, 0)}
            assert len(colours) == len(sample.instances.masks)  # one colour per instance
            scorer.add(sample, query, target)
    assert scorer.summary()["model"]["AP"] > 0.9

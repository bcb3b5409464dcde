import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from dicepipe.imageio import encode_png
from dicepipe.params.loader import LoaderParams
from dicepipe.shards.writer import image_cell, shard_schema
from dicepipe.tasks import SHARD_TASKS as TASKS
from dicepipe.tasks import TASK_PROMPTS
from dicepipe.train import loader as loader_module
from dicepipe.train.loader import (
    TaskMixingDataset,
    index_shards,
    make_loader,
    padded_points,
    partition_rows,
    shard_paths,
)

REPO = Path(__file__).resolve().parents[2]
PAPER = {"depth": 15, "normal": 15, "point_segmentation": 20, "entity_segmentation": 20}
PAPER |= {"semantic_segmentation": 20, "pose": 20}


def _png(value: int) -> bytes:
    return encode_png(np.full((4, 6, 3), value, np.uint8))


def _write_set(folder: Path, per_task: int, tasks=TASKS, shards: int = 3, group: int = 8):
    """Tiny shards: `per_task` rows of each task spread over files of `group`-row row groups."""
    pngs = [_png(v) for v in range(0, 250, 10)]
    rows = [
        {
            "key": f"item/{task}/{i:04d}",
            "task": task,
            "prompt": TASK_PROMPTS[task],
            "image": image_cell(pngs[i % len(pngs)]),
            "target": image_cell(pngs[(i + 1) % len(pngs)]),
            "points": [[0.25, 0.5]] * (1 + i % 5) if task == "point_segmentation" else [],
            "source": "synthetic",
            "source_id": str(i),
            "width": 6,
            "height": 4,
            "teacher": "t",
            "meta": "{}",
        }
        for task in tasks
        for i in range(per_task)
    ]
    paths = []
    for s in range(shards):
        table = pa.Table.from_pylist(rows[s::shards], schema=shard_schema())
        paths.append(folder / f"part-{s}.parquet")
        pq.write_table(table, paths[-1], row_group_size=group)
    return paths


def _take(dataset, n: int) -> list[dict]:
    return list(itertools.islice(iter(dataset), n))


def _ids(samples) -> list[tuple]:
    return [(s["key"], s["task"], s["epoch"], s["position"]) for s in samples]


def test_task_frequencies_match_the_weights(tmp_path):
    from scipy.stats import chisquare

    paths = _write_set(tmp_path, per_task=60, group=120)
    dataset = TaskMixingDataset(paths, PAPER, seed=3, steps=10_000)
    counts = Counter(sample["task"] for sample in dataset)
    observed = [counts[t] for t in TASKS]
    expected = [10_000 * PAPER[t] / 110 for t in TASKS]
    assert sum(observed) == 10_000
    assert chisquare(observed, expected).pvalue > 1e-3
    for o, e in zip(observed, expected, strict=True):
        assert abs(o - e) < 3 * np.sqrt(e)


def test_weights_renormalise_over_the_tasks_present(tmp_path):
    paths = _write_set(tmp_path, per_task=20, tasks=("depth", "pose"))
    weights = {**PAPER, "normal": 0.0}
    counts = Counter(s["task"] for s in TaskMixingDataset(paths, weights, steps=3_500))
    assert set(counts) == {"depth", "pose"}
    assert abs(counts["depth"] / 3_500 - 15 / 35) < 3 * np.sqrt(0.43 * 0.57 / 3_500)


def test_same_seed_same_stream_and_another_seed_another(tmp_path):
    paths = _write_set(tmp_path, per_task=10)
    a, b = (_take(TaskMixingDataset(paths, PAPER, seed=7), 150) for _ in range(2))
    assert _ids(a) == _ids(b)
    assert all(torch.equal(x["target"], y["target"]) for x, y in zip(a, b, strict=True))
    assert _ids(_take(TaskMixingDataset(paths, PAPER, seed=8), 150)) != _ids(a)


@pytest.mark.parametrize("partitions", [1, 4, 7, 40])
def test_every_row_belongs_to_exactly_one_partition(tmp_path, partitions):
    _, tasks = index_shards(_write_set(tmp_path, per_task=13))
    every = {(t, b, int(r)) for t, groups in tasks.items() for b, rows in groups for r in rows}
    owned = [
        (t, b, int(r))
        for part in partition_rows(tasks, partitions)
        for t, groups in part.items()
        for b, rows in groups
        for r in rows
    ]
    assert len(owned) == len(set(owned)) and set(owned) == every
    if partitions <= 13:  # a task with at least one row per partition reaches all of them
        assert all(set(p) == set(TASKS) for p in partition_rows(tasks, partitions))


def test_no_row_repeats_within_an_epoch_across_two_ranks_of_two_workers(tmp_path):
    paths = _write_set(tmp_path, per_task=12)
    seen = []
    for rank in range(2):
        dataset = TaskMixingDataset(paths, PAPER, rank=rank, world_size=2, num_workers=2, steps=90)
        for batch in torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2):
            seen += zip(batch["task"], batch["key"], batch["epoch"].tolist(), strict=True)
    assert len(seen) == 4 * 90
    per_epoch = Counter(seen)
    assert max(per_epoch.values()) == 1  # within a task's epoch, no row twice
    first = sorted((t, k) for t, k, e in seen if e == 0)
    assert first == sorted((t, f"item/{t}/{i:04d}") for t in TASKS for i in range(12))


def test_resume_continues_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(loader_module, "CHUNK", 64)  # cross several draw chunks cheaply
    paths = _write_set(tmp_path, per_task=9)
    reference = TaskMixingDataset(paths, PAPER, seed=5)
    stream = iter(reference)
    head = list(itertools.islice(stream, 137))
    state = reference.state_dict()
    tail = list(itertools.islice(stream, 163))
    resumed = TaskMixingDataset(paths, PAPER, seed=5)
    resumed.load_state_dict(state)
    again = _take(resumed, 163)
    assert _ids(again) == _ids(tail) and _ids(head)[-1][3] == 136
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(again, tail, strict=True))


def test_resume_with_workers_continues_exactly(tmp_path):
    paths = _write_set(tmp_path, per_task=9)

    def batches(dataset):
        return iter(torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2))

    reference = TaskMixingDataset(paths, PAPER, seed=2, num_workers=2)
    stream = batches(reference)
    for batch in itertools.islice(stream, 5):
        reference.record(batch)
    state = reference.state_dict()
    expected = [_batch_ids(b) for b in itertools.islice(stream, 5)]
    resumed = TaskMixingDataset(paths, PAPER, seed=2, num_workers=2)
    resumed.load_state_dict(state)
    assert [_batch_ids(b) for b in itertools.islice(batches(resumed), 5)] == expected


def _batch_ids(batch) -> list[tuple]:
    return list(zip(batch["key"], batch["task"], batch["position"].tolist(), strict=True))


def test_a_state_from_other_settings_is_refused(tmp_path):
    paths = _write_set(tmp_path, per_task=4)
    state = TaskMixingDataset(paths, PAPER, seed=1).state_dict()
    with pytest.raises(ValueError, match="seed"):
        TaskMixingDataset(paths, PAPER, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="weights"):
        TaskMixingDataset(paths, {**PAPER, "pose": 1}, seed=1).load_state_dict(state)
    TaskMixingDataset(paths, PAPER, seed=1, num_workers=2).load_state_dict(state)  # elastic


def _first_pass_rows(samples) -> list[tuple[str, str]]:
    return [(s["task"], s["key"]) for s in samples if s["epoch"] == 0]


@pytest.mark.parametrize("new_world", [1, 3])
def test_an_elastic_resume_continues_the_pass_without_repeats_or_gaps(tmp_path, new_world):
    paths = _write_set(tmp_path, per_task=11, group=4)
    ranks = [TaskMixingDataset(paths, PAPER, seed=4, rank=r, world_size=2) for r in range(2)]
    before = [sample for dataset in ranks for sample in _take(dataset, 17)]
    states = [dataset.state_dict() for dataset in ranks]
    after = []
    for rank in range(new_world):
        resumed = TaskMixingDataset(paths, PAPER, seed=4, rank=rank, world_size=new_world)
        resumed.load_state_dict(states)
        assert resumed.generation == 1
        after += _take(resumed, 400 // new_world)
    seen = _first_pass_rows(before) + _first_pass_rows(after)
    assert len(seen) == len(set(seen))  # no row of pass 0 twice
    assert sorted(seen) == sorted((t, f"item/{t}/{i:04d}") for t in TASKS for i in range(11))


def test_a_resume_from_every_rank_on_the_same_layout_continues_exactly(tmp_path):
    paths = _write_set(tmp_path, per_task=9, group=4)
    ranks = [TaskMixingDataset(paths, PAPER, seed=6, rank=r, world_size=2) for r in range(2)]
    streams = [iter(dataset) for dataset in ranks]
    for stream in streams:
        list(itertools.islice(stream, 23))
    states = [dataset.state_dict() for dataset in ranks]
    expected = [_ids(itertools.islice(stream, 40)) for stream in streams]
    for rank in range(2):
        resumed = TaskMixingDataset(paths, PAPER, seed=6, rank=rank, world_size=2)
        resumed.load_state_dict(states)
        assert _ids(_take(resumed, 40)) == expected[rank]


def test_partitions_read_whole_row_groups_of_large_tasks(tmp_path):
    paths = _write_set(tmp_path, per_task=96, group=48, shards=1)
    dataset = TaskMixingDataset(paths, PAPER, seed=1, rank=5, world_size=8, steps=200)
    samples = list(dataset)
    assert len(samples) == 200
    assert dataset.opens < 30 and dataset.rows_per_open() > 6  # row by row: one row per open


def test_shards_stream_from_an_fsspec_url(tmp_path):
    import fsspec

    paths = _write_set(tmp_path, per_task=5)
    fs = fsspec.filesystem("memory")
    for path in paths:
        fs.pipe(f"/shards/{path.name}", path.read_bytes())
    urls = loader_module.shard_locations("memory://shards")
    assert urls == [f"memory://shards/{p.name}" for p in paths]
    local = _take(TaskMixingDataset(paths, PAPER, seed=2), 30)
    remote = _take(TaskMixingDataset(urls, PAPER, seed=2), 30)
    assert [s["key"] for s in remote] == [s["key"] for s in local]


def test_points_are_padded_to_five_with_a_mask():
    points, mask = padded_points([[0.1, 0.2], [0.3, 0.4]])
    assert points.shape == (5, 2) and mask.tolist() == [True, True, False, False, False]
    assert points[1].tolist() == pytest.approx([0.3, 0.4]) and points[2:].abs().sum() == 0
    assert padded_points([[0.5, 0.5]] * 7)[1].all() and not padded_points(None)[1].any()


def test_samples_are_normalised_tensors_with_points(tmp_path):
    paths = _write_set(tmp_path, per_task=5)
    for sample in _take(TaskMixingDataset(paths, PAPER, resolution=8), 60):
        assert sample["image"].shape == sample["target"].shape == (3, 8, 8)
        assert sample["image"].dtype == torch.float32
        assert sample["image"].min() >= -1.0 and sample["image"].max() <= 1.0
        assert TASKS[sample["task_id"]] == sample["task"]
        assert sample["prompt"] == TASK_PROMPTS[sample["task"]]
        assert sample["point_mask"].any() == (sample["task"] == "point_segmentation")


@pytest.mark.skipif(not (REPO / "data/shards/manifest.json").exists(), reason="run dvc repro")
def test_real_sample_shards_load():
    params = LoaderParams(shards=str(REPO / "data/shards"), batch_size=4, num_workers=0)
    batch = next(iter(make_loader(params)))
    assert batch["image"].shape == (4, 3, 256, 256) == batch["target"].shape
    samples = _take(TaskMixingDataset(shard_paths(params.shards), PAPER, resolution=32), 120)
    assert {s["task"] for s in samples} == set(TASKS)
    pose = next(s for s in samples if s["task"] == "pose")["target"]
    colours = set(map(tuple, ((pose + 1) * 127.5).round().reshape(3, -1).T.int().tolist()))
    assert (255, 0, 0) in colours  # nearest resizing keeps the keypoint red exact


def test_passes_stay_exact_over_two_elastic_resumes_of_a_wrapping_stream(tmp_path):
    paths = _write_set(tmp_path, per_task=3, group=2)  # tasks wrap their passes often
    seen: list[tuple[str, int, str]] = []
    states = None
    for world, draws in ((2, 40), (3, 30), (1, 120)):
        ranks = [
            TaskMixingDataset(paths, PAPER, seed=9, rank=r, world_size=world) for r in range(world)
        ]
        for dataset in ranks:
            if states is not None:
                dataset.load_state_dict(states)
            last = _take(dataset, draws)
            seen += [(s["task"], s["epoch"], s["key"]) for s in last]
        states = [dataset.state_dict() for dataset in ranks]
    assert max(Counter(seen).values()) == 1  # no row twice within a pass
    for task in TASKS:
        final = max(epoch for t, epoch, _ in seen[-120:] if t == task)
        for epoch in range(final):  # every pass the single last rank left behind is whole
            keys = sorted(k for t, e, k in seen if t == task and e == epoch)
            assert keys == [f"item/{task}/{i:04d}" for i in range(3)], (task, epoch)


def test_consumed_indices_merge_into_runs():
    consumed = loader_module.Consumed([[5, 7]])
    for index in (0, 1, 3, 2, 4):
        consumed.add(index)
    assert consumed.runs() == [[0, 7]] and consumed.covers(7) and not consumed.covers(8)
    consumed.add_run(9, 12)
    assert consumed.runs() == [[0, 7], [9, 12]] and 10 in consumed and 8 not in consumed
    consumed.add_run(6, 10)
    assert consumed.runs() == [[0, 12]]


def test_hflip_mirrors_image_target_and_points_by_a_seeded_draw(shards):
    from dicepipe.shards.manifest import shard_paths

    def first(prob: float) -> dict:
        dataset = TaskMixingDataset(
            shard_paths(shards), {"point_segmentation": 1.0}, steps=1, hflip_prob=prob
        )
        return next(iter(dataset))

    plain, flipped = first(0.0), first(1.0)
    assert plain["key"] == flipped["key"]
    assert torch.equal(flipped["image"], plain["image"].flip(-1))
    assert torch.equal(flipped["target"], plain["target"].flip(-1))
    assert torch.allclose(flipped["points"][:2], torch.tensor([[0.75, 0.5], [0.5, 0.5]]))


def test_the_manifest_tells_how_instance_targets_mirror(tmp_path):
    from dicepipe.train.loader import layout_floor

    assert layout_floor(tmp_path) is None  # no manifest: plain flips
    (tmp_path / "manifest.json").write_text('{"instance_colors": {"scheme": "random"}}')
    assert layout_floor(tmp_path) is None
    note = '{"instance_colors": {"scheme": "layout", "channel_floor": 47}}'
    (tmp_path / "manifest.json").write_text(note)
    assert layout_floor(tmp_path) == 47
    (tmp_path / "manifest.json").write_text('{"instance_colors": {"scheme": "layout"}}')
    with pytest.raises(ValueError, match="layout instance_colors has no channel_floor"):
        layout_floor(tmp_path)


def test_a_layout_coloured_entity_target_mirrors_its_centroid_colour(shards):
    from dicepipe.shards.manifest import shard_paths

    def first(prob: float, floor: int | None) -> dict:
        dataset = TaskMixingDataset(
            shard_paths(shards),
            {"entity_segmentation": 1.0},
            steps=1,
            hflip_prob=prob,
            layout_floor=floor,
        )
        return next(iter(dataset))

    plain, flipped = first(0.0, None), first(1.0, 47)
    mirrored = plain["target"].flip(-1)
    assert torch.equal(flipped["target"][1:], mirrored[1:])  # G and B stay
    assert not torch.equal(flipped["target"][0], mirrored[0])  # R follows the mirrored centroid

"""Held-out synthetic scenes: the renderer's `heldout` split, scored with its exact labels.

Scene `i` renders from `item_seed(seed, "synthetic:heldout", i)`, a hash that never draws on
the training split's stream, so no held-out scene is a training scene. `training_overlap`
checks it (against the training split of the same corpus seed and against the synthetic rows
of the shards actually trained on), and the evaluation refuses to score a leaked scene.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from dicepipe.evaluate.benchmarks.sample import BenchmarkSample, Instances, People
from dicepipe.params.evaluate import HeldoutParams
from dicepipe.params.sample import SyntheticParams
from dicepipe.sources.synthetic.render import Scene
from dicepipe.sources.synthetic.scenes import SOURCE, parse_scene_id, render_from_id, scene_id

BENCHMARK = "heldout"


class HeldoutLeakError(RuntimeError):
    """A held-out scene is also a training scene."""


def split_ids(seed: int, n: int, split: str, people_prob: float = 0.5) -> list[str]:
    """Source ids of scenes 0..n-1 of a synthetic split (`train` or `heldout`)."""
    params = SyntheticParams(n=n, split=split, people_prob=people_prob)  # type: ignore[arg-type]
    return [scene_id(seed, params, index) for index in range(n)]


def heldout_ids(params: HeldoutParams) -> list[str]:
    """Source ids of the held-out scenes the params name."""
    return split_ids(params.seed, params.n, "heldout", params.people_prob)


def render_seeds(source_ids: Iterable[str]) -> set[int]:
    """The render seeds of synthetic source ids: what makes two scenes the same scene."""
    return {parse_scene_id(source_id)[0] for source_id in source_ids}


def shard_synthetic_ids(shards_dir: str | Path) -> set[str]:
    """Source ids of the synthetic rows in a shards folder (empty when there is none)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found: set[str] = set()
    for path in sorted(Path(shards_dir).glob("*.parquet")):
        table = pq.read_table(path, columns=["source", "source_id"])
        rows = table.filter(pc.equal(table["source"], SOURCE))
        found.update(rows["source_id"].to_pylist())
    return found


def training_overlap(
    heldout: Iterable[str], training: Iterable[str], shards_dir: str | Path | None = None
) -> set[int]:
    """Render seeds shared by the held-out ids and the training ids (plus, when given and
    present, the synthetic rows of the shards)."""
    seen = render_seeds(training)
    if shards_dir is not None and Path(shards_dir).is_dir():
        seen |= render_seeds(shard_synthetic_ids(shards_dir))
    return render_seeds(heldout) & seen


def check_heldout(params: HeldoutParams, shards_dir: str | Path | None) -> None:
    """Raise HeldoutLeakError when a held-out scene appears in the shards' synthetic rows."""
    leaked = training_overlap(heldout_ids(params), [], shards_dir)
    if leaked:
        seeds = ", ".join(f"{seed:016x}" for seed in sorted(leaked)[:5])
        raise HeldoutLeakError(f"held-out scenes are in the training shards: {seeds}")


def scene_sample(source_id: str, width: int, height: int) -> BenchmarkSample:
    """One held-out scene as a BenchmarkSample: RGB, exact depth and normals, every visible
    instance as a class-agnostic mask (category = 1) and its people's COCO keypoints."""
    scene = render_from_id(source_id, width, height)
    ids = [int(i) for i in np.unique(scene.instances) if i > 0]
    masks = np.stack([scene.instances == i for i in ids]) if ids else np.zeros((0, height, width))
    areas = masks.reshape(len(ids), -1).sum(axis=1).astype(np.float64)
    instances = Instances(
        masks.astype(bool), np.ones(len(ids), np.int64), np.zeros(len(ids), bool), areas
    )
    return BenchmarkSample(
        f"{SOURCE}/{source_id}",
        BENCHMARK,
        scene.rgb,
        depth=scene.depth.astype(np.float32),
        valid=np.isfinite(scene.depth) & (scene.depth > 0),
        normals=scene.normals.astype(np.float32),
        instances=instances,
        people=_people(scene),
        focal_px=scene.focal_px,
    )


def _people(scene: Scene) -> People:
    """COCO-style people of a scene: keypoints, the person mask's area and box (the p-th
    person instance owns keypoints[p])."""
    ids = [i + 1 for i, kind in enumerate(scene.instance_kinds) if kind == "person"]
    keypoints = np.asarray(scene.keypoints, np.float64).reshape(-1, 17, 3)
    areas, boxes = [], []
    for p, instance in enumerate(ids):
        rows, cols = np.nonzero(scene.instances == instance)
        if rows.size == 0:  # nobody to see: COCOeval ignores a person without keypoints
            keypoints[p] = 0.0
        areas.append(float(rows.size))
        boxes.append(_box(cols, rows))
    return People(
        keypoints,
        np.asarray(areas, np.float64).reshape(-1),
        np.asarray(boxes, np.float64).reshape(-1, 4),
        np.zeros(len(ids), bool),
    )


def _box(xs: np.ndarray, ys: np.ndarray) -> list[float]:
    if xs.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)]


def read_heldout(params: HeldoutParams, limit: int | None = None) -> Iterator[BenchmarkSample]:
    """Lazily render the held-out scenes (the first `limit` when given)."""
    for source_id in heldout_ids(params)[:limit]:
        yield scene_sample(source_id, params.width, params.height)

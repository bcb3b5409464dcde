"""Task-mixing training loader over the Parquet shards (imported only for training: torch).

Shards: local paths or fsspec URLs (`s3://...`, `gs://...`, `file://...`), read with
`pyarrow.parquet.ParquetFile` over an fsspec file; only the `task` column and the footers are
read up front, then one row group at a time.

Passes: a task walks pass 0 of its rows in a seeded, world-size-independent order (its row
groups in one seeded order, rows shuffled within each; a sample's `epoch` is the pass,
`index` its place in it), then pass 1 with rows shuffled afresh, and so on. A pass is cut
into pieces: contiguous runs of one row group's rows of the task, at most
max(1, rows // partitions) long, so a large task hands whole row groups to partitions and a
small one still reaches every partition with contiguous rows (no row-by-row splitting).
Pieces are dealt round-robin to the `world_size * max(1, num_workers)` (rank, worker)
partitions; a partition walks its pieces in a fresh order each pass, opening at most one row
group per piece (`opens`, `rows_per_open`); it holds the same row groups from pass to pass,
so a small task's stays open.

Mixing: each step draws a task with probability proportional to its weight among the tasks
present in the partition; a small task with a large weight repeats across passes, as its
weight demands. The stream is infinite unless `steps` caps it (training counts steps).

Samples: `image`, `target` float32 (3, H, W) in [-1, 1]; `points` (5, 2) normalised (x, y),
zero-padded, `point_mask` (5,) True for a real point (DICEPTION pads to 5 with "no point");
`task_id` indexes `TASKS`; `task`, `prompt`, `key`, `epoch`, `index`, `partition`, `position`.

Augmentation: with `hflip_prob` > 0 an example is mirrored (`dicepipe.train.augment`) by a
draw seeded with (seed, partition, position): the same sample flips the same way on a resume.

Resume: `record(batch)` after each consumed batch, `state_dict()` to save, `load_state_dict()`
(one state, or every rank's) before creating the DataLoader iterator (persistent workers keep
the state they started with). The state records, per task, the consumed indices of each pass
in progress: a resume on the same layout continues the exact stream; on another world size
or worker count (elastic) the remaining rows of every pass are dealt afresh, so the pass
goes on without repeating or skipping a row.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from dicepipe.imageio import resize_square
from dicepipe.sampling import stable_hash
from dicepipe.shards.manifest import MANIFEST_NAME, read_manifest, shard_paths
from dicepipe.storage import digest_of, location
from dicepipe.tasks import TASK_NAMES
from dicepipe.train.augment import maybe_flip

TASKS = TASK_NAMES  # `task_id` indexes this registry order
MAX_POINTS = 5
CHUNK = 4096  # task draws are generated per chunk of steps, so resuming replays counts only
COLUMNS = ["key", "task", "prompt", "image", "target", "points"]
Groups = list[tuple[int, np.ndarray]]  # (row group id, local row indices) of one task
Piece = tuple[int, int]  # [start, end) of a pass's indices, within one row group


def is_url(path: str | Path) -> bool:
    """Whether a shard location is an fsspec URL (`s3://...`) rather than a local path."""
    return "://" in str(path)


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """A ParquetFile over a local path or an fsspec URL (the file object stays open with it)."""
    if not is_url(path):
        return pq.ParquetFile(path)
    import fsspec

    return pq.ParquetFile(fsspec.open(str(path), "rb").open())


def shard_locations(shards: str | Path) -> list[str]:
    """The shard files of a local folder or an fsspec URL: its manifest's list, else every
    `*.parquet` under it."""
    if not is_url(shards):
        return [str(p) for p in shard_paths(shards)]
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(shards))
    base = str(shards).rstrip("/")
    manifest = f"{root.rstrip('/')}/{MANIFEST_NAME}"
    if fs.exists(manifest):
        with fs.open(manifest, "rb") as handle:
            return [f"{base}/{e['path']}" for e in json.load(handle)["shards"]]
    return [f"{base}/{Path(p).name}" for p in sorted(fs.glob(f"{root.rstrip('/')}/*.parquet"))]


def layout_floor(shards: str | Path) -> int | None:
    """The channel floor of the shards' layout-coloured instance targets (their manifest's
    `instance_colors`), or None: random colours, or no manifest to say otherwise."""
    if not (location(str(shards)) / MANIFEST_NAME).exists():
        return None
    colours = read_manifest(str(shards)).get("instance_colors", {})
    if colours.get("scheme") != "layout":
        return None
    if "channel_floor" not in colours:
        raise ValueError(f"{shards}: the manifest's layout instance_colors has no channel_floor")
    return int(colours["channel_floor"])


def index_shards(paths: Sequence[str | Path]) -> tuple[list[tuple[str, int]], dict[str, Groups]]:
    """Row groups (file, group) of the shards and, per task, its rows in each row group.

    Only the `task` column and the metadata are read.
    """
    blocks: list[tuple[str, int]] = []
    tasks: dict[str, Groups] = {}
    for path in paths:
        handle = open_parquet(path)
        column = np.asarray(handle.read(columns=["task"])["task"].to_pylist(), dtype=object)
        start = 0
        for group in range(handle.num_row_groups):
            size = handle.metadata.row_group(group).num_rows
            local = column[start : start + size]
            for task in sorted(set(local)):
                tasks.setdefault(task, []).append((len(blocks), np.flatnonzero(local == task)))
            blocks.append((str(path), group))
            start += size
    return blocks, tasks


def task_pass(seed: int, task: str, epoch: int, groups: Groups) -> tuple[np.ndarray, np.ndarray]:
    """Pass `epoch` of a task, the same for every world size (no rank or worker in its seed):
    the row groups in one seeded order for every pass, so a partition keeps its row groups
    from pass to pass (a small task's group stays open), rows shuffled afresh in each."""
    order = np.random.default_rng([seed, stable_hash(0, task), 0x9A55]).permutation(len(groups))
    rng = np.random.default_rng([seed, stable_hash(0, task), epoch, 0x9A55])
    blocks = [np.full(len(groups[i][1]), groups[i][0]) for i in order]
    rows = [rng.permutation(groups[i][1]) for i in order]
    return np.concatenate(blocks), np.concatenate(rows)


def pass_pieces(blocks: np.ndarray, partitions: int) -> list[Piece]:
    """A pass cut into pieces: runs of one row group, at most max(1, rows // partitions) long
    (so there are at least `partitions` pieces when the task has that many rows)."""
    longest = max(1, len(blocks) // partitions)
    cuts = [0, *(np.flatnonzero(np.diff(blocks)) + 1).tolist(), len(blocks)]
    return [
        (start, min(start + longest, end))
        for begin, end in zip(cuts[:-1], cuts[1:], strict=True)
        for start in range(begin, end, longest)
    ]


def dealt(pieces: Sequence[Piece], offset: int, partitions: int, partition: int) -> list[Piece]:
    """The pieces of one partition: piece i goes to partition (i + offset) % partitions."""
    return list(pieces[(partition - offset) % partitions :: partitions])


def partition_rows(
    tasks: Mapping[str, Groups], partitions: int, seed: int = 0, epoch: int = 0
) -> list[dict[str, Groups]]:
    """Every task's rows of pass `epoch` dealt over `partitions` as (row group, rows) pieces;
    each row lands in exactly one partition."""
    parts: list[dict[str, Groups]] = [{} for _ in range(partitions)]
    for offset, (task, groups) in enumerate(sorted(tasks.items())):
        blocks, rows = task_pass(seed, task, epoch, groups)
        for i, (start, end) in enumerate(pass_pieces(blocks, partitions)):
            owner = parts[(i + offset) % partitions].setdefault(task, [])
            owner.append((int(blocks[start]), rows[start:end]))
    return parts


class Consumed:
    """A set of pass indices kept as sorted disjoint [start, end) runs (JSON: [[s, e], ...])."""

    def __init__(self, runs: Sequence[Sequence[int]] = ()) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for start, end in runs:
            self.add_run(int(start), int(end))

    def __contains__(self, index: int) -> bool:
        i = bisect.bisect_right(self.starts, index) - 1
        return i >= 0 and index < self.ends[i]

    def add(self, index: int) -> None:
        """Add one index."""
        self.add_run(index, index + 1)

    def add_run(self, start: int, end: int) -> None:
        """Add the indices [start, end), merging touching runs."""
        i = bisect.bisect_left(self.ends, start)
        j = bisect.bisect_right(self.starts, end)
        if i < j:
            start, end = min(start, self.starts[i]), max(end, self.ends[j - 1])
        self.starts[i:j], self.ends[i:j] = [start], [end]

    def covers(self, size: int) -> bool:
        """Whether every index of [0, size) is in the set."""
        return size == 0 or (self.starts[:1] == [0] and self.ends[0] >= size)

    def runs(self) -> list[list[int]]:
        """The runs, for JSON."""
        return [[s, e] for s, e in zip(self.starts, self.ends, strict=True)]


def chunk_draws(seed: int, partition: int, chunk: int, weights: np.ndarray) -> np.ndarray:
    """The task (index into the present tasks) of each step of one chunk of a partition."""
    rng = np.random.default_rng([seed, partition, chunk, 0x7A5C])
    return rng.choice(len(weights), size=CHUNK, p=weights / weights.sum())


def decode_rgb(data: bytes, resolution: int | None, nearest: bool) -> np.ndarray:
    """Decode PNG/JPEG bytes to RGB uint8, resized to a square `resolution` when given.

    Targets use nearest-neighbour so segmentation and pose colours stay exact.
    """
    import cv2

    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if bgr is None:
        raise ValueError("undecodable image bytes in a shard")
    if resolution is not None:
        bgr = resize_square(bgr, resolution, nearest)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1] (numpy: no torch thread pool per image)."""
    chw = rgb.transpose(2, 0, 1).astype(np.float32)
    chw /= 127.5
    chw -= 1.0
    return torch.from_numpy(chw)


def padded_points(points: Sequence[Sequence[float]] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to 5 normalised (x, y) points, zero-padded to (5, 2), and their (5,) mask."""
    kept = list(points or [])[:MAX_POINTS]
    array = np.zeros((MAX_POINTS, 2), np.float32)
    if kept:
        array[: len(kept)] = np.asarray(kept, np.float32)
    mask = torch.zeros(MAX_POINTS, dtype=torch.bool)
    mask[: len(kept)] = True
    return torch.from_numpy(array), mask


class TaskMixingDataset(IterableDataset):
    """Weighted task mixing over shard files, partitioned across ranks and workers."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        weights: Mapping[str, float],
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        resolution: int | None = None,
        steps: int | None = None,
        hflip_prob: float = 0.0,
        layout_floor: int | None = None,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.paths = [str(p) for p in paths]
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.num_workers, self.resolution, self.steps = num_workers, resolution, steps
        self.hflip_prob = float(hflip_prob)
        self.layout_floor = layout_floor
        self.weights = {t: float(w) for t, w in sorted(weights.items()) if w > 0}
        self.blocks, self.tasks = index_shards(self.paths)
        self.sizes = {t: sum(len(r) for _, r in g) for t, g in self.tasks.items()}
        self.offsets = {t: i for i, t in enumerate(sorted(self.tasks))}
        self.local = max(1, num_workers)
        self.partitions = world_size * self.local
        self.counts = {t: self._piece_count(t) for t in self.tasks}
        rows = [open_parquet(p).metadata.num_rows for p in self.paths]
        self.fingerprint = digest_of([Path(p).name for p in self.paths], rows)
        self.positions, self.batches, self.generation = [0] * self.local, 0, 0
        self.floor: dict[str, int] = {}  # per task: every pass below it is fully consumed
        self.consumed: dict[tuple[str, int], Consumed] = {}
        self.reached: dict[tuple[int, str], int] = {}  # (partition, task) -> its current pass
        self.opens = 0  # row groups read (this process): rows consumed / opens = rows_per_open
        self._cache: OrderedDict[int, Any] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": OrderedDict()}  # row groups are re-read per process

    def _piece_count(self, task: str) -> int:
        """Pieces of any pass of a task (the count does not depend on the pass's order)."""
        longest = max(1, self.sizes[task] // self.partitions)
        return sum(-(-len(rows) // longest) for _, rows in self.tasks[task])

    def _present(self, task: str, partition: int) -> bool:
        return (partition - self.offsets[task]) % self.partitions < self.counts[task]

    def _local_partition(self) -> int:
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        if workers != self.local:
            raise ValueError(f"built for num_workers={self.num_workers}, run with {workers}")
        # Rotate by consumed batches: after a resume the DataLoader asks worker 0 first, and it
        # must serve the partition whose batch would have come next.
        return (worker + self.batches) % workers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        local = self._local_partition()
        partition = self.rank * self.local + local
        names = [t for t in self.tasks if t in self.weights and self._present(t, partition)]
        tasks = [t for t in TASKS if t in names] + sorted(set(names) - set(TASKS))
        if not tasks:
            return
        weights = np.asarray([self.weights[t] for t in tasks])
        walks = [self._walk(task, partition) for task in tasks]
        step = self.positions[local]
        draws = None
        while self.steps is None or step < self.steps:
            if draws is None or step % CHUNK == 0:
                draws = self._draws(partition, step // CHUNK, weights)
            t = int(draws[step % CHUNK])
            epoch, index, block, row = next(walks[t])
            self._mark(partition, tasks[t], epoch, index)
            step += 1
            self.positions[local] = step
            sample = self._sample(block, row, partition, step - 1)
            yield {
                **sample,
                "epoch": epoch,
                "index": index,
                "partition": partition,
                "position": step - 1,
            }

    def _draws(self, partition: int, chunk: int, weights: np.ndarray) -> np.ndarray:
        # a new generation (after an elastic resume) draws a fresh sequence
        key = partition if self.generation == 0 else partition + self.generation * (1 << 20)
        return chunk_draws(self.seed, key, chunk, weights)

    def _walk(self, task: str, partition: int) -> Iterator[tuple[int, int, int, int]]:
        """(pass, index, row group, row) of a partition's rows of a task, pass after pass,
        skipping the indices already consumed (by any partition, before a resume)."""
        epoch = self.floor.get(task, 0)
        while True:
            blocks, rows = task_pass(self.seed, task, epoch, self.tasks[task])
            pieces = dealt(
                pass_pieces(blocks, self.partitions),
                self.offsets[task],
                self.partitions,
                partition,
            )
            rng = np.random.default_rng([self.seed, stable_hash(0, task), epoch, partition])
            for k in rng.permutation(len(pieces)):  # its pieces in a fresh order each pass
                start, end = pieces[k]
                for index in range(start, end):
                    done = self.consumed.get((task, epoch))
                    if done is None or index not in done:
                        yield epoch, index, int(blocks[index]), int(rows[index])
            epoch += 1

    def _mark(self, partition: int, task: str, epoch: int, index: int) -> None:
        """Record one consumed sample (its pass index) and the pass its partition reached."""
        self.consumed.setdefault((task, epoch), Consumed()).add(index)
        key = (partition, task)
        if epoch > self.reached.get(key, 0):
            self.reached[key] = epoch
            below = self._below(task)  # passes every local partition is done with
            for done in [k for k in self.consumed if k[0] == task and k[1] < below]:
                del self.consumed[done]

    def _below(self, task: str) -> int:
        """The first pass of a task that some partition of this rank has not finished."""
        floor = self.floor.get(task, 0)
        local = range(self.rank * self.local, (self.rank + 1) * self.local)
        present = [p for p in local if self._present(task, p)]
        return min((self.reached.get((p, task), floor) for p in present), default=floor)

    def _sample(self, block: int, row: int, partition: int, position: int) -> dict[str, Any]:
        table = self._block(block)
        cells = table.slice(row, 1).to_pylist()[0]
        image = decode_rgb(cells["image"]["bytes"], self.resolution, False)
        target = decode_rgb(cells["target"]["bytes"], self.resolution, True)
        raw_points = cells["points"]
        if self.hflip_prob > 0:
            rng = np.random.default_rng([self.seed, partition, position, 0xF119])
            image, target, raw_points = maybe_flip(
                cells["task"], image, target, raw_points, self.hflip_prob, rng, self.layout_floor
            )
        points, mask = padded_points(raw_points)
        return {
            "image": to_tensor(image),
            "target": to_tensor(target),
            "points": points,
            "point_mask": mask,
            "task_id": TASKS.index(cells["task"]) if cells["task"] in TASKS else -1,
            "task": cells["task"],
            "prompt": cells["prompt"],
            "key": cells["key"],
        }

    def _block(self, block: int) -> Any:
        """A row group's columns, from a small LRU: one open row group per task at most."""
        if block not in self._cache:
            path, group = self.blocks[block]
            self._cache[block] = open_parquet(path).read_row_group(group, columns=COLUMNS)
            self.opens += 1
            while len(self._cache) > len(TASKS):
                self._cache.popitem(last=False)
        self._cache.move_to_end(block)
        return self._cache[block]

    def record(self, batch: Mapping[str, Any]) -> None:
        """Mark one batch (or sample) as consumed: call once per item the DataLoader hands over."""
        partitions = torch.as_tensor(batch["partition"]).reshape(-1).tolist()
        positions = torch.as_tensor(batch["position"]).reshape(-1).tolist()
        epochs = torch.as_tensor(batch["epoch"]).reshape(-1).tolist()
        indices = torch.as_tensor(batch["index"]).reshape(-1).tolist()
        tasks = [batch["task"]] if isinstance(batch["task"], str) else list(batch["task"])
        first = self.rank * self.local
        rows = zip(partitions, positions, tasks, epochs, indices, strict=True)
        for partition, position, task, epoch, index in rows:
            local = partition - first
            self.positions[local] = max(self.positions[local], position + 1)
            self._mark(partition, task, epoch, index)
        self.batches += 1

    def state_dict(self) -> dict[str, Any]:
        """What `load_state_dict` needs to continue where the consumed samples end.

        Per task: `below`, the pass this rank's partitions have all reached (their share of
        every earlier pass is consumed), and the consumed indices of the passes from there on.
        """
        local = range(self.rank * self.local, (self.rank + 1) * self.local)
        tasks = {}
        for task in self.tasks:
            floor, below = self.floor.get(task, 0), self._below(task)
            consumed = {
                str(epoch): runs.runs()
                for (name, epoch), runs in sorted(self.consumed.items())
                if name == task and epoch >= below
            }
            tasks[task] = {"floor": floor, "below": below, "consumed": consumed}
        return {
            **self._identity(),
            "partitions": self.partitions,
            "local": list(local),
            "generation": self.generation,
            "positions": {str(p): n for p, n in zip(local, self.positions, strict=True)},
            "batches": self.batches,
            "tasks": tasks,
        }

    def load_state_dict(self, state: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        """Continue from one saved state or every rank's (as saved by a run of any world size
        and worker count); the shards, seed and weights must be the same."""
        states = [state] if isinstance(state, Mapping) else list(state)
        for saved in states:
            for name, value in self._identity().items():
                if saved.get(name) != value:
                    raise ValueError(
                        f"saved loader state has {name}={saved.get(name)!r}, not {value!r}"
                    )
        layouts = {int(saved["partitions"]) for saved in states}
        if len(layouts) != 1:
            raise ValueError(f"loader states of different layouts: {sorted(layouts)} partitions")
        old = layouts.pop()
        self._merge_consumed(states, old)
        positions = {int(p): n for saved in states for p, n in saved["positions"].items()}
        generation = max(int(saved["generation"]) for saved in states)
        mine = range(self.rank * self.local, (self.rank + 1) * self.local)
        if old == self.partitions and all(p in positions for p in mine):
            self.positions = [int(positions[p]) for p in mine]
            self.batches = max(int(saved["batches"]) for saved in states)
            self.generation = generation
        else:  # elastic: a new layout deals the rest of every pass afresh
            self.positions, self.batches = [0] * self.local, 0
            self.generation = generation + 1
        self.reached = {}

    def _merge_consumed(self, states: Sequence[Mapping[str, Any]], partitions: int) -> None:
        """The union of the ranks' consumed indices, passes fully consumed folded into `floor`."""
        self.consumed, self.floor = {}, {}
        for task in self.tasks:
            saved = [s["tasks"].get(task, {"floor": 0, "below": 0, "consumed": {}}) for s in states]
            floor = min(int(t["floor"]) for t in saved)
            for rank_state, task_state in zip(states, saved, strict=True):
                for epoch, runs in task_state["consumed"].items():
                    target = self.consumed.setdefault((task, int(epoch)), Consumed())
                    for start, end in runs:
                        target.add_run(start, end)
                for epoch in range(floor, int(task_state["below"])):
                    target = self.consumed.setdefault((task, epoch), Consumed())
                    for start, end in self._share(task, epoch, partitions, rank_state["local"]):
                        target.add_run(start, end)
            while (task, floor) in self.consumed and self.consumed[(task, floor)].covers(
                self.sizes[task]
            ):
                del self.consumed[(task, floor)]
                floor += 1
            self.floor[task] = floor

    def _share(self, task: str, epoch: int, partitions: int, owners: Sequence[int]) -> list[Piece]:
        """The pieces of a pass that `owners` held in a layout of `partitions` partitions."""
        blocks, _ = task_pass(self.seed, task, epoch, self.tasks[task])
        pieces = pass_pieces(blocks, partitions)
        offset = self.offsets[task]
        return [piece for p in owners for piece in dealt(pieces, offset, partitions, p)]

    def rows_per_open(self) -> float:
        """Rows consumed per row group read in this process (N: higher is less I/O)."""
        return sum(self.positions) / max(1, self.opens)

    def _identity(self) -> dict[str, Any]:
        return {"shards": self.fingerprint, "seed": self.seed, "weights": dict(self.weights)}


def make_loader(
    params: Any, rank: int = 0, world_size: int = 1, hflip_prob: float = 0.0
) -> torch.utils.data.DataLoader:
    """A DataLoader over `params.shards` (LoaderParams) for one rank; its dataset is `.dataset`.

    `hflip_prob`: the chance that an example is mirrored (train.hflip_prob); the manifest
    says how instance targets are coloured, hence how they mirror.
    """
    dataset = TaskMixingDataset(
        shard_locations(params.shards),
        vars(params.weights),
        seed=params.seed,
        rank=rank,
        world_size=world_size,
        num_workers=params.num_workers,
        resolution=params.resolution,
        hflip_prob=hflip_prob,
        layout_floor=layout_floor(params.shards) if hflip_prob > 0 else None,
    )
    return torch.utils.data.DataLoader(
        dataset, batch_size=params.batch_size, num_workers=params.num_workers
    )

"""Task-mixing training loader over the Parquet shards (imported only for training: torch).

Partitions: each (rank, worker) owns one of `world_size * max(1, num_workers)` partitions;
every row belongs to exactly one. A task with at least as many row groups as partitions is
split by row group (no row group read by two workers), a smaller one row by row.

Mixing: each step draws a task with probability proportional to its weight among the tasks
present in the partition. Tasks cycle independently: a task walks pass 0 of its rows in a
seeded order (row groups shuffled, rows shuffled within each), then pass 1 in a fresh order,
and so on. Within a pass (a sample's `epoch`) no row repeats and every row comes once; a small
task with a large weight repeats across passes, as its weight demands. The stream is infinite
unless `steps` caps it (training counts steps). One row group per task stays in memory.

Samples: `image`, `target` float32 (3, H, W) in [-1, 1]; `points` (5, 2) normalised (x, y),
zero-padded, `point_mask` (5,) True for a real point (DICEPTION pads to 5 with "no point");
`task_id` indexes `TASKS`; `task`, `prompt`, `key`, `epoch`, `partition`, `position`.

Augmentation: with `hflip_prob` > 0 an example is mirrored (`dicepipe.train.augment`) by a
draw seeded with (seed, partition, position): the same sample flips the same way on a resume.

Resume: `record(batch)` after each consumed batch, `state_dict()` to save, `load_state_dict()`
before creating the DataLoader iterator (persistent workers keep the state they started with).
"""

from __future__ import annotations

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
from dicepipe.shards.manifest import shard_paths
from dicepipe.storage import digest_of
from dicepipe.tasks import TASK_NAMES
from dicepipe.train.augment import maybe_flip

TASKS = TASK_NAMES  # `task_id` indexes this registry order
MAX_POINTS = 5
CHUNK = 4096  # task draws are generated per chunk of steps, so resuming replays counts only
COLUMNS = ["key", "task", "prompt", "image", "target", "points"]
Groups = list[tuple[int, np.ndarray]]  # (row group id, local row indices) of one task


def index_shards(paths: Sequence[str | Path]) -> tuple[list[tuple[str, int]], dict[str, Groups]]:
    """Row groups (file, group) of the shards and, per task, its rows in each row group.

    Only the `task` column and the metadata are read.
    """
    blocks: list[tuple[str, int]] = []
    tasks: dict[str, Groups] = {}
    for path in paths:
        handle = pq.ParquetFile(path)
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


def partition_rows(tasks: Mapping[str, Groups], partitions: int) -> list[dict[str, Groups]]:
    """Split every task's rows over `partitions`; each row lands in exactly one of them."""
    parts: list[dict[str, Groups]] = [{} for _ in range(partitions)]
    for offset, (task, groups) in enumerate(sorted(tasks.items())):
        if len(groups) >= partitions:
            for i, group in enumerate(groups):
                parts[(i + offset) % partitions].setdefault(task, []).append(group)
            continue
        ordinal = offset
        for block, rows in groups:
            owner = (ordinal + np.arange(len(rows))) % partitions
            for p in range(partitions):
                if (owner == p).any():
                    parts[p].setdefault(task, []).append((block, rows[owner == p]))
            ordinal += len(rows)
    return parts


def pass_order(groups: Groups, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One pass over a task's rows: (row group ids, local rows), groups and rows shuffled."""
    order = rng.permutation(len(groups))
    blocks = [np.full(len(groups[i][1]), groups[i][0]) for i in order]
    rows = [rng.permutation(groups[i][1]) for i in order]
    return np.concatenate(blocks), np.concatenate(rows)


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
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.paths = [str(p) for p in paths]
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.num_workers, self.resolution, self.steps = num_workers, resolution, steps
        self.hflip_prob = float(hflip_prob)
        self.weights = {t: float(w) for t, w in sorted(weights.items()) if w > 0}
        self.blocks, tasks = index_shards(self.paths)
        local = max(1, num_workers)
        parts = partition_rows(tasks, world_size * local)[rank * local : (rank + 1) * local]
        self.parts = [{t: g for t, g in p.items() if t in self.weights} for p in parts]
        rows = [pq.ParquetFile(p).metadata.num_rows for p in self.paths]
        self.fingerprint = digest_of([Path(p).name for p in self.paths], rows)
        self.positions, self.batches = [0] * local, 0
        self._cache: OrderedDict[int, Any] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": OrderedDict()}  # row groups are re-read per process

    def _local_partition(self) -> int:
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        if workers != max(1, self.num_workers):
            raise ValueError(f"built for num_workers={self.num_workers}, run with {workers}")
        # Rotate by consumed batches: after a resume the DataLoader asks worker 0 first, and it
        # must serve the partition whose batch would have come next.
        return (worker + self.batches) % workers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        local = self._local_partition()
        partition = self.rank * max(1, self.num_workers) + local
        groups = self.parts[local]
        tasks = [t for t in TASKS if t in groups] + sorted(set(groups) - set(TASKS))
        if not tasks:
            return
        weights = np.asarray([self.weights[t] for t in tasks])
        step = self.positions[local]
        seen = self._replay(partition, weights, step)
        orders: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
        draws = None
        while self.steps is None or step < self.steps:
            if draws is None or step % CHUNK == 0:
                draws = chunk_draws(self.seed, partition, step // CHUNK, weights)
            t = int(draws[step % CHUNK])
            epoch, block, row = self._locate(partition, groups[tasks[t]], tasks[t], seen[t], orders)
            seen[t] += 1
            step += 1
            self.positions[local] = step
            sample = self._sample(block, row, partition, step - 1)
            yield {**sample, "epoch": epoch, "partition": partition, "position": step - 1}

    def _locate(
        self, partition: int, groups: Groups, task: str, ordinal: int, orders: dict
    ) -> tuple[int, int, int]:
        """(epoch, row group, row) of a task's `ordinal`-th draw; `orders` caches its pass."""
        size = orders[task][1].size if task in orders else sum(len(r) for _, r in groups)
        epoch, offset = divmod(int(ordinal), size)
        if orders.get(task, (None,))[0] != epoch:
            rng = np.random.default_rng([self.seed, partition, stable_hash(0, task), epoch])
            orders[task] = (epoch, *pass_order(groups, rng))
        _, blocks, rows = orders[task]
        return epoch, int(blocks[offset]), int(rows[offset])

    def _replay(self, partition: int, weights: np.ndarray, step: int) -> np.ndarray:
        """How often each task was drawn in the first `step` steps of a partition."""
        seen = np.zeros(len(weights), np.int64)
        for chunk in range(step // CHUNK + 1):
            draws = chunk_draws(self.seed, partition, chunk, weights)
            seen += np.bincount(draws[: min(CHUNK, step - chunk * CHUNK)], minlength=len(seen))
        return seen

    def _sample(self, block: int, row: int, partition: int, position: int) -> dict[str, Any]:
        table = self._block(block)
        cells = table.slice(row, 1).to_pylist()[0]
        image = decode_rgb(cells["image"]["bytes"], self.resolution, False)
        target = decode_rgb(cells["target"]["bytes"], self.resolution, True)
        raw_points = cells["points"]
        if self.hflip_prob > 0:
            rng = np.random.default_rng([self.seed, partition, position, 0xF119])
            image, target, raw_points = maybe_flip(
                cells["task"], image, target, raw_points, self.hflip_prob, rng
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
            self._cache[block] = pq.ParquetFile(path).read_row_group(group, columns=COLUMNS)
            while len(self._cache) > len(TASKS):
                self._cache.popitem(last=False)
        self._cache.move_to_end(block)
        return self._cache[block]

    def record(self, batch: Mapping[str, Any]) -> None:
        """Mark one batch (or sample) as consumed: call once per item the DataLoader hands over."""
        partitions = torch.as_tensor(batch["partition"]).reshape(-1).tolist()
        positions = torch.as_tensor(batch["position"]).reshape(-1).tolist()
        first = self.rank * max(1, self.num_workers)
        for partition, position in zip(partitions, positions, strict=True):
            local = partition - first
            self.positions[local] = max(self.positions[local], position + 1)
        self.batches += 1

    def state_dict(self) -> dict[str, Any]:
        """What `load_state_dict` needs to continue exactly where the consumed samples end."""
        return {**self._identity(), "positions": list(self.positions), "batches": self.batches}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a saved state; the shards, seed, weights and layout must be the same."""
        for name, value in self._identity().items():
            if state.get(name) != value:
                raise ValueError(
                    f"saved loader state has {name}={state.get(name)!r}, not {value!r}"
                )
        self.positions, self.batches = list(state["positions"]), int(state["batches"])

    def _identity(self) -> dict[str, Any]:
        return {
            "shards": self.fingerprint,
            "seed": self.seed,
            "weights": dict(self.weights),
            "rank": self.rank,
            "world_size": self.world_size,
            "num_workers": self.num_workers,
        }


def make_loader(
    params: Any, rank: int = 0, world_size: int = 1, hflip_prob: float = 0.0
) -> torch.utils.data.DataLoader:
    """A DataLoader over `params.shards` (LoaderParams) for one rank; its dataset is `.dataset`.

    `hflip_prob`: the chance that an example is mirrored (train.hflip_prob).
    """
    dataset = TaskMixingDataset(
        shard_paths(params.shards),
        vars(params.weights),
        seed=params.seed,
        rank=rank,
        world_size=world_size,
        num_workers=params.num_workers,
        resolution=params.resolution,
        hflip_prob=hflip_prob,
    )
    return torch.utils.data.DataLoader(
        dataset, batch_size=params.batch_size, num_workers=params.num_workers
    )

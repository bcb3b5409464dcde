"""Training throughput: loader samples/s against what a training step consumes, in one run.

Timed side by side on the same shards and resolution: the task-mixing loader alone (decode,
resize, collate; `--workers` DataLoader workers) and the training step of a model preset
(flow-matching loss, backward, the trainer's fused AdamW) on a fixed batch, and the AdamW step
alone in torch's three implementations (fused, foreach, a loop over tensors). The ratio
loader/step is how many times faster the loader feeds than the step eats (goal: >= 3, so the
accelerator never waits).
Also: step time, tokens/s (noisy + condition image tokens) and, on CUDA, peak memory and model
FLOP utilisation against `--peak-tflops` (H100/H200 bf16 dense: 989); and N, the rows a
partition consumes per row group it opens, for one partition of `--partitions` (64 GPUs x 8
workers: 512), over `--draws` samples (N = 1 would be a row group read for every row).

    .venv/bin/python bench/train.py [--shards data/shards] [--preset tiny] [--resolution 64]
        [--batch 8] [--steps 10] [--workers 2] [--device auto] [--peak-tflops 989]
        [--partitions 512] [--draws 400] [--layout ITEMS] [--n-only]

`--layout ITEMS` measures N on a generated shard set instead of `--shards`: ITEMS items with
a production-like task mix (every item depth and normal, half point and entity segmentation,
a fifth semantic, one in twenty pose), sorted by key then task as encode writes them, in row
groups of `--group-rows` rows (a 100 MiB row group of ~100 KB rows: ~1000). `--n-only`
skips the timings.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dicepipe.model import DiceptionModel, FlowConfig, flow_matching_loss, make_space
from dicepipe.params.loader import LoaderParams
from dicepipe.train.loader import TaskMixingDataset, make_loader, shard_locations
from dicepipe.train.optim import can_fuse
from dicepipe.weights import resolve_device


def loader_rate(shards: str, resolution: int, batch: int, workers: int, batches: int) -> float:
    """Samples per second the loader delivers (after its first batch: workers warm up)."""
    params = LoaderParams(
        shards=shards, batch_size=batch, num_workers=workers, resolution=resolution
    )
    iterator = iter(make_loader(params))
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def rows_per_open(shards: str, partitions: int, draws: int) -> tuple[float, int]:
    """(N, row groups opened): rows consumed per row group read by partition 0 of
    `partitions`, over `draws` samples, with the project's task weights."""
    params = LoaderParams(shards=shards)
    dataset = TaskMixingDataset(
        shard_locations(shards),
        vars(params.weights),
        world_size=partitions,
        resolution=32,
        steps=draws,
    )
    for _ in dataset:
        pass
    return dataset.rows_per_open(), dataset.opens


def write_layout(folder: Path, items: int, group_rows: int) -> str:
    """A shard set with a production-like task mix and tiny images (only the layout counts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dicepipe.imageio import encode_png
    from dicepipe.shards.writer import image_cell, shard_schema
    from dicepipe.tasks import TASK_PROMPTS

    png = image_cell(encode_png(torch.zeros(4, 4, 3, dtype=torch.uint8).numpy()))
    share = {"depth": 1, "normal": 1, "point_segmentation": 2, "entity_segmentation": 2}
    share |= {"semantic_segmentation": 5, "pose": 20}  # one item in n feeds the task
    rows = [
        {"key": f"item/{i:07d}", "task": task, "prompt": TASK_PROMPTS[task], "image": png}
        | {"target": png, "points": [], "source": "s", "source_id": str(i), "width": 4}
        | {"height": 4, "teacher": "t", "meta": "{}"}
        for i in range(items)
        for task in sorted(share)
        if i % share[task] == 0
    ]
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=shard_schema())
    pq.write_table(table, folder / "layout-000.parquet", row_group_size=group_rows)
    return str(folder)


def print_rows_per_open(shards: str, partitions: int, draws: int) -> None:
    """Print N for one partition of `partitions`."""
    n, opens = rows_per_open(shards, partitions, draws)
    print(f"row groups   N = {n:.1f} rows per row group opened ({opens} opened for {draws} rows")
    print(f"             by one partition of {partitions})")


def step_rate(
    preset: str, resolution: int, batch: int, steps: int, device: torch.device
) -> tuple[float, int, float]:
    """(seconds per step, tokens per sample, model FLOPs per step) of the training step."""
    model = DiceptionModel.from_preset(preset).to(device).train()
    space = make_space(model.config)
    weights = list(model.parameters())
    optimizer = torch.optim.AdamW(weights, lr=1e-4, fused=can_fuse(weights))  # as the trainer
    side = resolution // (1 if space.channels == 3 else 8)
    generator = torch.Generator(device).manual_seed(0)
    batch_data = {
        "image": torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1,
        "target": torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1,
        "points": torch.rand(batch, 5, 2, device=device),
        "point_mask": torch.zeros(batch, 5, dtype=torch.bool, device=device),
        "task_id": torch.zeros(batch, dtype=torch.long, device=device),
    }
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def one_step() -> None:
        with autocast:
            loss, _ = flow_matching_loss(
                model, space, batch_data, generator=generator, config=FlowConfig()
            )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    patch = model.transformer.config.patch_size
    tokens = 2 * (side // patch) ** 2
    parameters = sum(p.numel() for p in model.transformer.parameters())
    flops = 6 * parameters * tokens * batch  # forward + backward, dense-transformer estimate
    return seconds, tokens, flops


def optimizer_rates(preset: str, device: torch.device, steps: int) -> dict[str, float]:
    """Seconds per AdamW step over the preset's parameters (random gradients), timed side by
    side for the three torch implementations: fused (the trainer's), foreach and a loop."""
    model = DiceptionModel.from_preset(preset).to(device)
    weights = list(model.parameters())
    for weight in weights:
        weight.grad = torch.randn_like(weight)
    kinds = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}
    optimizers = {name: torch.optim.AdamW(weights, lr=1e-4, **kw) for name, kw in kinds.items()}
    seconds = dict.fromkeys(kinds, 0.0)
    for round_ in range(steps + 1):  # round-robin: drift hits each kind alike; round 0 warms up
        for name, optimizer in optimizers.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds[name] += (time.perf_counter() - start) if round_ else 0.0
    return {name: total / steps for name, total in seconds.items()}


def main() -> None:
    """Print loader samples/s, step time, tokens/s and the loader/step ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", default="data/shards")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--partitions", type=int, default=512)
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--layout", type=int, help="items of a generated shard set for N")
    parser.add_argument("--group-rows", type=int, default=1000)
    parser.add_argument("--n-only", action="store_true", help="print N only")
    args = parser.parse_args()
    shards = args.shards
    if args.layout:
        shards = write_layout(Path(tempfile.mkdtemp()), args.layout, args.group_rows)
    if args.n_only:
        print_rows_per_open(shards, args.partitions, args.draws)
        return
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds, tokens, flops = step_rate(args.preset, args.resolution, args.batch, args.steps, device)
    consumed = args.batch / seconds
    delivered = loader_rate(shards, args.resolution, args.batch, args.workers, max(4, args.steps))
    print(f"device {device}  preset {args.preset}  {args.resolution}px  batch {args.batch}")
    print(f"train step   {seconds * 1000:8.1f} ms   {consumed:8.1f} samples/s consumed")
    print(f"tokens       {tokens} per sample   {tokens * consumed:10.0f} tokens/s")
    print(f"loader       {delivered:8.1f} samples/s delivered ({args.workers} workers)")
    print(f"ratio        loader / step = {delivered / consumed:.2f} (goal >= 3)")
    adamw = optimizer_rates(args.preset, device, max(20, args.steps))
    print(
        "AdamW step   "
        + "  ".join(f"{name} {value * 1000:.2f} ms" for name, value in adamw.items())
        + f"   loop / fused = {adamw['loop'] / adamw['fused']:.1f}x"
    )
    print_rows_per_open(shards, args.partitions, args.draws)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        mfu = flops / seconds / (args.peak_tflops * 1e12)
        print(f"peak memory  {peak:.1f} GiB   MFU {100 * mfu:.1f}% of {args.peak_tflops} TFLOPS")


if __name__ == "__main__":
    main()

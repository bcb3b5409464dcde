"""Label throughput: the teacher path vs a bare batched forward of the same model, one run.

    python bench/label.py            # tiny random Depth Pro on the CPU
    python bench/label.py --full     # full-size Depth Pro architecture, random weights (GPU)

Rows: `stream` = JPEG bytes decoded by decode threads + preprocess + forward + postprocess
(label_stream); `label` = the same on pre-decoded arrays (teacher.label); `bare` = only
model(pixel_values) on pre-decoded, pre-resized batches. Ratios are throughput / bare; each
path is timed in interleaved rounds and the best round counts (shared machines are noisy).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _jpegs(n: int, height: int, width: int, seed: int) -> list[tuple[str, bytes]]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    items = []
    for i in range(n):
        base = np.stack([xx * rng.uniform(0.1, 1), yy * rng.uniform(0.1, 1), xx + yy], axis=-1)
        noisy = base % 256 + rng.normal(0, 8, base.shape)
        buf = io.BytesIO()
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        items.append((f"item-{i:05d}", buf.getvalue()))
    return items


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def main() -> None:
    """Build a random-weight Depth Pro, time the three paths, print images/s and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size config (needs a GPU)")
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the best one counts")
    args = parser.parse_args()
    items_n = args.items or (32 if args.full else 48)
    height = args.height or (768 if args.full else 240)
    width = args.width or (1024 if args.full else 320)
    batch = args.batch_size or (4 if args.full else 8)

    import torch

    from dicepipe.imageio import decode_image
    from dicepipe.teachers.base import TeacherInput
    from dicepipe.teachers.depth_pro import (
        DepthProTeacher,
        preprocess_images,
        save_random_depth_pro,
    )
    from dicepipe.teachers.stream import label_stream

    with tempfile.TemporaryDirectory() as tmp:
        save_random_depth_pro(tmp, "full" if args.full else "tiny")
        teacher = DepthProTeacher(tmp, device=args.device, dtype=args.dtype, batch_size=batch)
    device, model = teacher.device, teacher.model
    items = _jpegs(items_n, height, width, seed=0)
    arrays = [decode_image(data).rgb for _, data in items]
    keys = [key for key, _ in items]
    inputs = [TeacherInput(k, "bench", k, rgb) for k, rgb in zip(keys, arrays, strict=True)]
    with torch.inference_mode():
        tensors = [torch.from_numpy(a.copy()).to(device) for a in arrays]
        pixels = [
            preprocess_images(tensors[i : i + batch], teacher.input_size, teacher.dtype)
            for i in range(0, len(tensors), batch)
        ]

    def bare() -> None:
        with torch.inference_mode():
            for chunk in pixels:
                model(pixel_values=chunk)

    def labelled() -> None:
        teacher.label(inputs)

    def streamed() -> None:
        results = list(label_stream(teacher, items, batch_size=batch, num_workers=args.workers))
        assert all(r.error is None for r in results), "bench items must all label"

    teacher.label(inputs[:batch])  # warm-up: kernels, allocator, lazy init
    bare()
    paths = {"bare": bare, "label": labelled, "stream": streamed}
    rounds = [{name: _timed(fn, device) for name, fn in paths.items()} for _ in range(args.repeats)]
    times = {name: min(r[name] for r in rounds) for name in paths}
    print(
        f"depth_pro {'full' if args.full else 'tiny'} {device} {teacher.dtype} input "
        f"{teacher.input_size}px, {items_n} JPEGs {width}x{height}, batch {batch}, "
        f"{args.workers} workers, torch threads {torch.get_num_threads()}, "
        f"best of {args.repeats} interleaved rounds"
    )
    for name in ("bare", "label", "stream"):
        rate = items_n / times[name]
        print(f"  {name:<7}{rate:9.2f} img/s  ratio to bare {times['bare'] / times[name]:.3f}")


if __name__ == "__main__":
    main()

"""SA-1B sample path vs bare `cv2.imdecode`, and its peak memory at 1x vs 10x items.

Throughput: the whole SA-1B path of the `sample` stage (list the tar, select by hash, stream
the tar, decode and validate every JPEG, parse the JSON, check and filter the RLE masks, draw
prompt points, write the unit's Parquet files) against `cv2.imdecode` of the same JPEG bytes
already in memory, in the same process, one OpenCV thread; best of --repeats for each,
interleaved. The path writes real files (with fsync): its disk time is part of the cost.
Memory: the same path in fresh subprocesses on tars of N and 10 N items; peak RSS (VmHWM),
which includes the interpreter and libraries, as the user sees it.

    .venv/bin/python bench/sources.py [--shapes 512x8:200,1536x64:24] [--memory 512x8:100]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from dicepipe.imageio import encode_jpeg
from dicepipe.params.sample import Sa1bParams, SampleParams
from dicepipe.pipeline import sample

BENCH = str(Path(__file__).resolve().parent)
POOL = 24  # distinct pictures; items cycle through them (decode cost is per item anyway)


def picture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size RGB picture: gradients, a few discs and noise (a JPEG-realistic mix)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    phase = rng.random(3) * 6.28
    rgb = np.stack([np.sin(xx * 7 + phase[c] + yy * (c + 2)) for c in range(3)], axis=2) * 90
    for _ in range(6):
        cy, cx, r = rng.random(3) * (1.0, 1.0, 0.25)
        rgb[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += rng.normal(0, 60, 3)
    rgb += 128 + rng.normal(0, 12, (size, size, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def annotations(rng: np.random.Generator, image_id: int, size: int, masks: int) -> list[dict]:
    """SA-1B style annotations: rectangle and disc masks as compressed COCO RLE."""
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for k in range(masks):
        y0, x0 = (int(v) for v in rng.integers(0, size - 8, 2))
        h, w = (int(v) for v in rng.integers(4, size // 2, 2))
        if k % 2:
            mask = (yy - y0) ** 2 + (xx - x0) ** 2 < (h // 2) ** 2
        else:
            mask = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        out.append(
            {
                "id": image_id * 100 + k,
                "segmentation": {"size": [size, size], "counts": rle["counts"].decode()},
                "area": int(mask.sum()),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "predicted_iou": float(rng.uniform(0.8, 1.0)),
                "stability_score": float(rng.uniform(0.85, 1.0)),
                "point_coords": [[float(x0), float(y0)]],
                "crop_box": [0, 0, size, size],
            }
        )
    return out


def write_tar(path: Path, items: int, size: int, masks: int, seed: int = 0) -> None:
    """An `sa_NNNNNN.tar` of `items` image/JSON pairs with `masks` annotations each (the
    annotations, like the pictures, come from a pool: only their decoding is measured)."""
    rng = np.random.default_rng(seed)
    pool = [encode_jpeg(picture(rng, size), quality=90) for _ in range(POOL)]
    records = [annotations(rng, i, size, masks) for i in range(POOL)]
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as archive:
        for i in range(1, items + 1):
            record = {
                "image": {"image_id": i, "width": size, "height": size, "file_name": f"sa_{i}.jpg"},
                "annotations": [dict(a, id=i * 1000 + k) for k, a in enumerate(records[i % POOL])],
            }
            for name, data in (
                (f"sa_{i}.jpg", pool[i % POOL]),
                (f"sa_{i}.json", json.dumps(record).encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))


def params_for(tar: Path, items: int) -> SampleParams:
    """Sample params that select every item of `tar`, with typical SA-1B filters."""
    section = Sa1bParams(
        tars=(str(tar),), n=items, min_area=100, min_stability_score=0.88, max_annotations=6
    )
    return SampleParams(seed=0, max_pixels=50_000_000, sa1b=section)


def run_path(params: SampleParams, out: Path) -> int:
    """The sample stage's SA-1B path: plan, then every unit; the number of rows written."""
    return sum(sample.run_unit(u, params, out)["rows"] for u in sample.plan(params))


def jpeg_bytes(tar: Path) -> list[bytes]:
    """Every JPEG member's bytes, in memory (the baseline decodes these)."""
    with tarfile.open(tar) as archive:
        return [
            archive.extractfile(m).read() for m in archive.getmembers() if m.name.endswith(".jpg")
        ]


def interleaved_best(fns: list, repeats: int) -> list[float]:
    """The fastest of `repeats` timed calls of each function, calls interleaved (so a burst
    of load from elsewhere on the machine hits all of them alike), after one warm-up each."""
    best = [float("inf")] * len(fns)
    for fn in fns:
        fn()
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def throughput(tmp: Path, items: int, size: int, masks: int, repeats: int) -> tuple[float, float]:
    """(items/s of the SA-1B path, items/s of bare cv2.imdecode) on the same JPEGs."""
    tar = tmp / "sa_000000.tar"
    tar.parent.mkdir(parents=True)
    write_tar(tar, items, size, masks)
    params, blobs = params_for(tar, items), jpeg_bytes(tar)
    runs = iter(range(10**6))

    def path() -> None:
        assert run_path(params, tmp / f"out-{next(runs)}") == items

    def bare() -> None:
        for blob in blobs:
            cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)

    path_s, bare_s = interleaved_best([path, bare], repeats)
    return items / path_s, items / bare_s


def peak_rss_mb(tar: Path, items: int, out: Path) -> float:
    """Peak RSS of a fresh process that runs the SA-1B path over `tar`: VmHWM, which exec
    resets (ru_maxrss would carry over the high-water mark of the forking parent)."""
    code = (
        f"import sys; from pathlib import Path; sys.path.insert(0, {BENCH!r});"
        "import sources; p = sources.params_for(Path(sys.argv[1]), int(sys.argv[2]));"
        "sources.run_path(p, Path(sys.argv[3]));"
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
    )
    args = [sys.executable, "-c", code, str(tar), str(items), str(out)]
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1]) / 1024  # kB


def memory(tmp: Path, items: int, size: int, masks: int) -> tuple[float, float]:
    """Peak RSS (MB) of the path over N items and over 10 N items."""
    peaks = []
    for scale in (1, 10):
        tar = tmp / f"x{scale}" / "sa_000000.tar"
        tar.parent.mkdir(parents=True)
        write_tar(tar, items * scale, size, masks)
        peaks.append(peak_rss_mb(tar, items * scale, tmp / f"mem-out-{scale}"))
    return peaks[0], peaks[1]


def parse_shape(text: str) -> tuple[int, int, int]:
    """`SIZExMASKS:ITEMS` -> (size, masks, items)."""
    shape, items = text.split(":")
    size, masks = shape.split("x")
    return int(size), int(masks), int(items)


def main() -> None:
    """Print throughput and its ratio to bare decoding per shape, then the memory ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes",
        default="512x8:200,1536x64:24",
        help="SIDExMASKS:ITEMS,... timed runs (1536x64 is close to a real SA-1B image)",
    )
    parser.add_argument("--memory", default="512x8:100", help="SIDExMASKS:N of the 1x run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="dicepipe-bench-") as name:
        for number, text in enumerate(args.shapes.split(",")):
            size, masks, items = parse_shape(text)
            tmp = Path(name) / f"rate-{number}"
            path_rate, bare_rate = throughput(tmp, items, size, masks, args.repeats)
            print(
                f"{size}px {masks:3d} masks  sa1b path {path_rate:7.1f} items/s"
                f"  cv2.imdecode {bare_rate:7.1f} items/s"
                f"  ratio {path_rate / bare_rate:.2f} (goal >= 0.8)"
            )
        size, masks, items = parse_shape(args.memory)
        one, ten = memory(Path(name) / "memory", items, size, masks)
        print(
            f"{size}px {masks:3d} masks  peak RSS {one:.1f} MB at {items} items,"
            f" {ten:.1f} MB at {10 * items}  ratio {ten / one:.2f} (goal <= 1.2)"
        )


if __name__ == "__main__":
    main()

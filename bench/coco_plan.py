"""Planning a COCO-format dataset from a large annotations file: peak memory and time.

Generates a COCO-ReM-like instances file (polygon masks of 20 points, 80 categories) with
--annotations annotations over --images images, then, each in a fresh subprocess: `json.load`
of the file (what planning did before streaming), `coco.plan_units` (the streamed plan: image
ids and the sha256 only), and reading the records of one unit of --block images (what each
unit streams). Peak RSS is VmHWM: interpreter and libraries included, as the user sees it.

    .venv/bin/python bench/coco_plan.py [--annotations 200000] [--images 30000] [--block 5000]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
mode, path, block = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = time.perf_counter()
if mode == "json.load":
    with open(path, "rb") as handle:
        detail = f"{len(json.load(handle)['annotations'])} annotations"
else:
    from dicepipe.params.sample import CocoParams
    from dicepipe.sources.coco import plan_units, read_index
    params = CocoParams(name="coco_rem", annotations=path, n=10**9, block_images=block,
                        tasks=("semantic_segmentation",))
    units = plan_units(params, seed=0)
    if mode == "plan":
        detail = f"{len(units)} units, {sum(len(u.items) for u in units)} images"
    else:
        unit = units[0]
        ids = {i for _, info in unit.items for i in info["image_ids"]}
        started = time.perf_counter()
        index = read_index(unit.annotations, ids, unit.annotations_sha256)
        detail = f"{sum(map(len, index.annotations.values()))} annotations of {len(ids)} images"
seconds = time.perf_counter() - started
peak = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "peak_mb": int(peak.split()[1]) / 1024, "detail": detail}))
"""


def write_annotations(path: Path, annotations: int, images: int, seed: int = 0) -> None:
    """A COCO instances file written record by record (the generator never holds it whole)."""
    rng = random.Random(seed)
    with path.open("w") as out:
        out.write('{"info": {"description": "bench"}, "images": [')
        for number in range(1, images + 1):
            record = {"id": number, "file_name": f"{number:012d}.jpg", "width": 640, "height": 480}
            out.write(("," if number > 1 else "") + json.dumps(record))
        out.write('], "annotations": [')
        for number in range(1, annotations + 1):
            polygon = [round(rng.uniform(0, 480), 2) for _ in range(40)]
            record = {
                "id": number,
                "image_id": rng.randint(1, images),
                "category_id": rng.randint(1, 80),
                "segmentation": [polygon],
                "area": 100.0,
                "bbox": [1.0, 2.0, 3.0, 4.0],
                "iscrowd": 0,
            }
            out.write(("," if number > 1 else "") + json.dumps(record))
        categories = [json.dumps({"id": c, "name": f"class{c}"}) for c in range(1, 81)]
        out.write('], "categories": [' + ",".join(categories) + "]}")


def measure(mode: str, path: Path, block: int) -> dict:
    """One measurement in a fresh interpreter."""
    args = [sys.executable, "-c", CHILD, mode, str(path), str(block)]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    """Generate the file, measure each mode, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=int, default=200_000)
    parser.add_argument("--images", type=int, default=30_000)
    parser.add_argument("--block", type=int, default=5_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "instances.json"
        write_annotations(path, args.annotations, args.images)
        size_mb = path.stat().st_size / 2**20
        print(f"{args.annotations} annotations over {args.images} images: {size_mb:.0f} MB")
        print(f"{'mode':<12} {'seconds':>8} {'peak RSS MB':>12}  detail")
        for mode in ("json.load", "plan", "unit read"):
            result = measure(mode, path, args.block)
            line = f"{mode:<12} {result['seconds']:>8.1f} {result['peak_mb']:>12.0f}"
            print(f"{line}  {result['detail']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

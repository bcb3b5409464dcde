"""Planning at the paper's scale, on generated inputs of the real shapes: time and peak RSS.

- openimages: an index CSV of --rows rows with the published columns (ImageID, Subset,
  OriginalURL, OriginalLandingURL, License, AuthorProfileURL, Author, Title, OriginalSize,
  OriginalMD5, Thumbnail300KURL, Rotation), planned with n = --n.
- sa1b: --tars tiny tars of --per-tar image pairs each; planned twice (the first run lists
  every tar and writes the listings, the second reads only the listings), with the tar bytes
  read by each run counted through a counting fsspec filesystem.
- coco: a COCO-ReM-like instances file (--images images, --annotations polygons); the plan
  (one streamed read that also writes the per-file Parquet index) and one unit's read.

Each measurement runs in a fresh subprocess; peak RSS is VmHWM (interpreter and libraries
included, as the user sees it); `cpu_seconds` (user + system) is printed beside the wall time,
since on a shared machine the wall time mostly measures the neighbours. Run the same command
with PYTHONPATH at another checkout's `src` to measure that code on the same inputs (inputs
are kept in --work).

    .venv/bin/python bench/plan_scale.py openimages [--rows 9000000] [--n 500000]
    .venv/bin/python bench/plan_scale.py sa1b [--tars 1000] [--per-tar 20]
    .venv/bin/python bench/plan_scale.py coco [--images 120000] [--annotations 860000]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
cpu_at_start = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
mode, args = sys.argv[1], json.loads(sys.argv[2])
if mode == "openimages":
    from dicepipe.params.sample import OpenImagesParams
    from dicepipe.sources.openimages import plan_units
    params = OpenImagesParams(index=args["index"], images="x", n=args["n"], block_rows=10000)
    units = plan_units(params, seed=0)
    detail = f"{len(units)} units, {sum(len(u.items) for u in units)} items"
elif mode == "sa1b":
    import fsspec
    sys.path.insert(0, args["bench"])
    from plan_scale import counting_filesystem
    CountingFileSystem = counting_filesystem()
    fsspec.register_implementation("counting", CountingFileSystem, clobber=True)
    from dicepipe.params.sample import Sa1bParams
    from dicepipe.sources import sa1b
    params = Sa1bParams(tars=(f"counting://{args['root']}/*.tar",), n=args["n"])
    names = sa1b.plan_units.__code__.co_varnames  # the code before listings has no listing_dir
    kwargs = {"listing_dir": Path(args["listings"])} if "listing_dir" in names else {}
    units = sa1b.plan_units(params, 0, **kwargs)
    detail = f"{len(units)} units, {CountingFileSystem.read_bytes()} tar bytes read"
else:
    from dicepipe.params.sample import CocoParams
    from dicepipe.sources import coco
    params = CocoParams(name="coco_rem", annotations=args["path"], n=10**9,
                        block_images=args["block"], tasks=("semantic_segmentation",))
    names = coco.plan_units.__code__.co_varnames  # the code before indexes has no index_dir
    kwargs = {"index_dir": Path(args["index_dir"])} if "index_dir" in names else {}
    units = coco.plan_units(params, 0, **kwargs)
    if mode == "coco-plan":
        detail = f"{len(units)} units, {sum(len(u.items) for u in units)} images"
    else:
        started = time.perf_counter()
        cpu_at_start = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        unit = units[0]
        ids = {i for _, info in unit.items for i in info["image_ids"]}
        if hasattr(coco, "unit_records"):
            index = coco.unit_records(unit, ids)
        else:
            index = coco.read_index(unit.annotations, ids, unit.annotations_sha256)
        annotations = sum(map(len, index.annotations.values()))
        detail = f"one unit: {len(index.images)} images, {annotations} annotations"
seconds = time.perf_counter() - started
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime - cpu_at_start
print(json.dumps({"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                  "peak_mb": int(peak) // 1024, "detail": detail}))
"""


def counting_filesystem() -> type:
    """A local filesystem under `counting://` that counts the bytes read from opened files
    (`read_bytes()`), to show what a run reads without object storage."""
    from fsspec.implementations.local import LocalFileSystem

    class CountingFileSystem(LocalFileSystem):
        protocol = "counting"
        total = [0]

        def _open(self, path, mode="rb", **kwargs):
            handle = super()._open(path, mode, **kwargs)
            read = handle.read

            def counted(*args):
                data = read(*args)
                CountingFileSystem.total[0] += len(data)
                return data

            handle.read = counted
            return handle

        @classmethod
        def read_bytes(cls) -> int:
            return cls.total[0]

    return CountingFileSystem


def run_child(mode: str, args: dict) -> dict:
    """One measurement in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_openimages_index(path: Path, rows: int) -> None:
    """An index CSV of `rows` rows with the published columns and realistic value lengths."""
    header = (
        "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,"
        "OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation\n"
    )
    rng = random.Random(0)
    licence = "https://creativecommons.org/licenses/by/2.0/"
    with open(path, "w") as handle:
        handle.write(header)
        for start in range(0, rows, 100_000):
            lines = []
            for i in range(start, min(start + 100_000, rows)):
                image_id = f"{rng.getrandbits(64):016x}"
                photo, user = rng.getrandbits(34), rng.getrandbits(30)
                rotation = ("0.0", "", "90.0", "0.0")[i % 4]
                lines.append(
                    f"{image_id},train,https://farm3.staticflickr.com/{i % 9000}/{photo}_"
                    f"{image_id[:10]}_o.jpg,https://www.flickr.com/photos/{user}/{photo},"
                    f"{licence},https://www.flickr.com/people/{user}@N00/,Author {user},"
                    f"Title of photo {photo},{rng.getrandbits(22)},"
                    f"{image_id}{image_id[:6]}==,https://c{i % 7}.staticflickr.com/"
                    f"{i % 9000}/{photo}_{image_id[:10]}_z.jpg,{rotation}\n"
                )
            handle.write("".join(lines))


def make_sa1b_tars(root: Path, tars: int, per_tar: int) -> None:
    """`tars` tars of `per_tar` tiny jpg/json pairs (the listing cost is per member header)."""
    root.mkdir(parents=True, exist_ok=True)
    for t in range(tars):
        with tarfile.open(root / f"sa_{t:06d}.tar", "w") as archive:
            for k in range(per_tar):
                stem = f"sa_{t * per_tar + k}"
                for ext, size in ((".jpg", 2048), (".json", 512)):
                    info = tarfile.TarInfo(stem + ext)
                    info.size = size
                    archive.addfile(info, io.BytesIO(bytes(size)))


def bench_openimages(work: Path, rows: int, n: int) -> None:
    """Plan the generated index with n = `n`."""
    index = work / f"openimages-{rows}.csv"
    if not index.exists():
        make_openimages_index(index, rows)
    size = index.stat().st_size / 2**30
    result = run_child("openimages", {"index": str(index), "n": n})
    print(f"openimages plan: {rows} rows ({size:.2f} GiB), n={n}: {result}")


def bench_sa1b(work: Path, tars: int, per_tar: int) -> None:
    """Plan the generated tars twice; the second run must read no tar bytes."""
    root = work / f"sa1b-{tars}x{per_tar}"
    if not root.exists():
        make_sa1b_tars(root, tars, per_tar)
    listings = work / f"sa1b-listings-{tars}x{per_tar}"
    shutil.rmtree(listings, ignore_errors=True)  # the first plan lists every tar
    args = {"root": str(root), "n": tars * per_tar // 2, "listings": str(listings)}
    args["bench"] = str(Path(__file__).resolve().parent)
    for run in ("first", "second"):
        result = run_child("sa1b", args)
        print(f"sa1b plan, {tars} tars x {per_tar} pairs, {run} run: {result}", flush=True)


def bench_coco(work: Path, images: int, annotations: int, block: int) -> None:
    """Plan a generated COCO-ReM-like file, then read one unit's records."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from coco_plan import write_annotations

    path = work / f"coco-{images}-{annotations}.json"
    if not path.exists():
        write_annotations(path, annotations, images)
    index_dir = work / "coco-index"
    shutil.rmtree(index_dir, ignore_errors=True)  # the first plan builds the index
    args = {"path": str(path), "block": block, "index_dir": str(index_dir)}
    size = path.stat().st_size / 2**20
    for mode, run in (("coco-plan", "first"), ("coco-plan", "second"), ("coco-unit", "")):
        label = f"{mode} {run}".strip()
        print(f"{label}: {images} images, {annotations} annotations ({size:.0f} MB):", end=" ")
        print(run_child(mode, args), flush=True)


def main() -> None:
    """Generate the inputs of one source (kept in --work) and measure its planning."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", choices=["openimages", "sa1b", "coco"])
    parser.add_argument("--work", default="/tmp/dicepipe-plan-scale")
    parser.add_argument("--rows", type=int, default=9_000_000)
    parser.add_argument("--n", type=int, default=500_000)
    parser.add_argument("--tars", type=int, default=1000)
    parser.add_argument("--per-tar", type=int, default=20)
    parser.add_argument("--images", type=int, default=120_000)
    parser.add_argument("--annotations", type=int, default=860_000)
    parser.add_argument("--block", type=int, default=5000)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.source == "openimages":
        bench_openimages(work, args.rows, args.n)
    elif args.source == "sa1b":
        bench_sa1b(work, args.tars, args.per_tar)
    else:
        bench_coco(work, args.images, args.annotations, args.block)


if __name__ == "__main__":
    main()

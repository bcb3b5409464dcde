"""Peak memory of one label unit and one encode unit at 1x and 10x the items per unit.

`bench/memory.py` scales the number of units; this scales one unit. A sample unit of
`--items` rendered scenes at `--width` x `--height` (JPEG) is written, and another with
`--scale` times as many; each is labelled by a tiny random-weight Depth Pro (built from its
config, as the tests do; geometry normals, so a label row holds fp16 depth and normals:
8 bytes a pixel) and encoded into shards, every run in its own child process. The child
reports its peak resident set size (VmHWM) after its imports and setup (`base`) and after
the unit (`peak`). At 1024 x 768 a label row is 6 MiB, so rows dominate the unit's memory
(before streaming, a label unit held every row, twice). Goal: peak 10x / 1x <= 1.2.

    .venv/bin/python bench/unit_memory.py [--items 12] [--scale 10] [--width 1024]
        [--height 768] [--row-group-mb 8] [--shard-mb 32] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_unit(path: Path, items: int, width: int, height: int) -> None:
    """A sample unit of `items` rendered scenes (JPEG), in key order as the sample stage
    writes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dicepipe.imageio import encode_jpeg
    from dicepipe.records import SAMPLE_SCHEMA
    from dicepipe.sources.common import sample_row
    from dicepipe.sources.synthetic.render import render_scene

    path.parent.mkdir(parents=True, exist_ok=True)
    scenes = [encode_jpeg(render_scene(i, width, height).rgb) for i in range(min(items, 8))]
    with pq.ParquetWriter(path, SAMPLE_SCHEMA) as writer:
        for start in range(0, items, 8):
            rows = [
                sample_row("openimages", f"{i:06d}", "u", "x", scenes[i % len(scenes)], [], 10**9)
                for i in range(start, min(items, start + 8))
            ]
            writer.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))


def maxrss_mib() -> float:
    """This process's peak resident set size so far, MiB: VmHWM of /proc/self/status (Linux).

    Not ru_maxrss: Linux carries the parent's peak across fork and exec into the child's
    ru_maxrss, so every child would report at least the (large) parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child(args: argparse.Namespace) -> None:
    """Run one stage on one unit in this process; print a JSON line of its memory."""
    from dicepipe.params.encode import EncodeParams
    from dicepipe.params.label import LabelParams
    from dicepipe.pipeline import encode, label
    from dicepipe.teachers import make_teacher

    work, unit = Path(args.work), Path(args.unit)
    if args.child == "label":
        params = LabelParams(
            teacher="depth_pro",
            weights=str(work / "depth_pro"),
            normals="geometry",
            device="cpu",
            batch_size=4,
            num_workers=2,
            cache_dir=str(work / f"cache-{unit.parent.name}"),
        )
        teacher = make_teacher(params)
        base = maxrss_mib()
        label.run_unit(unit, teacher, params, unit.parent.parent / "labels")
    else:
        params = EncodeParams(
            shard_bytes=args.shard_mb << 20, row_group_bytes=args.row_group_mb << 20
        )
        base = maxrss_mib()
        root = unit.parent.parent
        encode.run_unit(unit, root / "labels", params, root / "shards", root / "work")
    print(json.dumps({"base": base, "peak": maxrss_mib()}))


def measure(stage: str, unit: Path, work: Path, args: argparse.Namespace) -> dict[str, float]:
    """Run one stage on one unit in a child process; its memory figures."""
    command = [sys.executable, __file__, "--child", stage, "--unit", str(unit)]
    command += ["--work", str(work), "--row-group-mb", str(args.row_group_mb)]
    command += ["--shard-mb", str(args.shard_mb)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Write the two units, run label then encode on each in a child; print the peaks."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--row-group-mb", type=int, default=8, help="encode.row_group_bytes")
    parser.add_argument("--shard-mb", type=int, default=32, help="encode.shard_bytes")
    parser.add_argument("--keep", help="write here and keep it (default: a temporary folder)")
    parser.add_argument("--child", choices=["label", "encode"], help=argparse.SUPPRESS)
    parser.add_argument("--unit", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from dicepipe.runtime import configure_environment
    from dicepipe.teachers.depth_pro import save_random_depth_pro

    work = Path(args.keep or tempfile.mkdtemp(prefix="unit-memory-"))
    configure_environment(work / "cache")
    save_random_depth_pro(work / "depth_pro")
    sizes = {"1x": args.items, f"{args.scale}x": args.items * args.scale}
    units = {}
    for name, items in sizes.items():
        units[name] = work / name / "samples" / "openimages-000000.parquet"
        write_unit(units[name], items, args.width, args.height)
    print(f"unit of {args.width}x{args.height} images; items per unit: {sizes}")
    print(f"{'stage':8}{'scale':>7}{'items':>7}{'base MiB':>10}{'peak MiB':>10}{'unit MiB':>10}")
    peaks: dict[str, list[float]] = {}
    for stage in ("label", "encode"):
        for name, unit in units.items():
            figures = measure(stage, unit, work, args)
            grown = figures["peak"] - figures["base"]
            peaks.setdefault(stage, []).append(figures["peak"])
            row = f"{stage:8}{name:>7}{sizes[name]:>7}{figures['base']:>10.0f}"
            print(f"{row}{figures['peak']:>10.0f}{grown:>10.0f}")
    for stage, (one, many) in peaks.items():
        print(f"{stage}: peak {args.scale}x / 1x = {many / one:.2f} (goal <= 1.2)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

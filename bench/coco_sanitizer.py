"""Streaming a COCO file that holds one long string value: time and peak memory.

Writes a valid annotations file whose only image record carries a string of --sizes MB (a
long `file_name`, as a hostile or broken export may hold), then streams it with
`coco_stream.stream_coco` in a fresh subprocess per size. A linear sanitizer keeps the time
ratio between sizes near the size ratio; peak RSS is VmHWM (interpreter included).

    .venv/bin/python bench/coco_sanitizer.py [--sizes 8 16 32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
from dicepipe.sources.coco_stream import stream_coco
started = time.perf_counter()
lengths = []
stream_coco(sys.argv[1], {"images": lambda n, r: lengths.append(len(r["file_name"]))})
seconds = time.perf_counter() - started
peak = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "peak_mb": int(peak.split()[1]) / 1024, "chars": lengths[0]}))
"""


def write_long_string_file(path: Path, megabytes: int) -> None:
    """A valid COCO file with one image whose file name is `megabytes` MB long (with escapes,
    quotes and brackets inside the string, which the sanitizer must not count)."""
    piece = 'ab\\"[{c\\\\' + "x" * 118
    value = (piece * (megabytes * (1 << 20) // len(piece) + 1))[: megabytes << 20]
    document = {
        "images": [{"id": 1, "file_name": value, "width": 4, "height": 4}],
        "annotations": [],
        "categories": [{"id": 1, "name": "thing"}],
    }
    path.write_text(json.dumps(document))


def main() -> None:
    """Print seconds and peak memory per string size, and the time ratio to the smallest."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    args = parser.parse_args()
    first = None
    with tempfile.TemporaryDirectory() as folder:
        tiny = Path(folder) / "tiny.json"
        tiny.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}]}))
        print(
            f"baseline (interpreter, libraries, a tiny file): peak {_run(tiny)['peak_mb']:.0f} MB"
        )
        for megabytes in args.sizes:
            path = Path(folder) / f"long_{megabytes}.json"
            write_long_string_file(path, megabytes)
            result = _run(path)
            first = first or (megabytes, result["seconds"])
            ratio = result["seconds"] / first[1]
            print(
                f"{megabytes:4d} MB string: {result['seconds']:7.2f} s,"
                f" peak {result['peak_mb']:6.0f} MB (file {path.stat().st_size / 2**20:.0f} MB),"
                f" time x{ratio:.1f} for"
                f" size x{megabytes / first[0]:.0f}"
            )
            path.unlink()


def _run(path: Path) -> dict:
    command = [sys.executable, "-c", CHILD, str(path)]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


if __name__ == "__main__":
    main()

"""Peak memory of each data stage (sample, label, composite, encode) at 1x and 10x the sample.

The sample corpus generator writes the corpus twice into a scratch folder: as `make-sample`
does (1x), and with every count multiplied by --scale (each `n_*` of `write_sample_corpus`,
the matting `per_source`). The params are the project's with the sample paths pointed at that
corpus and, at 10x, every `n` of the `sample` section and `composite.count` multiplied; unit
sizes stay, so 10x means ten times as many units of the same size. Each stage runs its flow
script in a child process, one after the other, as `dvc repro` would. Two peaks per stage:

  proc  the largest single process: ru_maxrss of getrusage(RUSAGE_CHILDREN) in a small
        wrapper process whose only child is the flow (the kernel's exact high-water mark,
        over the flow and every descendant it waited for: DataLoader and Dask workers, the
        Prefect server);
  tree  psutil: the largest sum of PSS (proportional set size: a page shared by n processes
        counts 1/n in each) over the flow and all its descendants, sampled every 50 ms.

Numba's cache is warmed first, so neither scale measures pymatting's JIT. Goal: 10x / 1x
<= 1.2 in both columns. This scales the number of units, not their size: `bench/unit_memory.py`
measures one label and one encode unit with ten times the items.

    .venv/bin/python bench/memory.py [--scale 10] [--synthetic 300] [--keep DIR]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

try:
    import psutil
except ImportError:  # the tree column needs it; the proc column does not
    psutil = None

REPO = Path(__file__).resolve().parents[1]
STAGES = ("sample", "label", "composite", "encode")
SAMPLE_DIR = "data/sample"
WRAPPER = (
    "import resource, subprocess, sys;"
    "code = subprocess.call(sys.argv[1:]);"
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
    "sys.exit(code)"
)
WARM_NUMBA = (
    "import numpy as np; from dicepipe.composite.foreground import estimate_foreground;"
    "estimate_foreground(np.zeros((32, 32, 3), np.uint8), np.full((32, 32), 0.5))"
)


def write_corpus(out: Path, scale: int) -> dict[str, int]:
    """The sample corpus (and matting foregrounds) with every count times `scale`; the counts."""
    from dicepipe.sources.synthetic.corpus import write_sample_corpus
    from dicepipe.sources.synthetic.matting import write_matting_corpus

    counts = {
        name: param.default * scale
        for name, param in inspect.signature(write_sample_corpus).parameters.items()
        if name.startswith("n_")
    }
    write_sample_corpus(out, seed=0, **counts)
    per_source = inspect.signature(write_matting_corpus).parameters["per_source"].default
    write_matting_corpus(out / "matting", seed=0, per_source=per_source * scale)
    return {**counts, "matting_per_source": per_source * scale}


def _repoint(value: Any, corpus: Path) -> Any:
    """`value` with every path under the embedded sample pointed at `corpus` instead."""
    if isinstance(value, dict):
        return {key: _repoint(item, corpus) for key, item in value.items()}
    if isinstance(value, list):
        return [_repoint(item, corpus) for item in value]
    if isinstance(value, str) and value.startswith(SAMPLE_DIR):
        return str(corpus) + value[len(SAMPLE_DIR) :]
    return value


def _multiply_counts(section: Any, scale: int) -> None:
    """Multiply every `n` (items to select) found anywhere in a params section, in place."""
    if isinstance(section, list):
        for item in section:
            _multiply_counts(item, scale)
    elif isinstance(section, dict):
        if isinstance(section.get("n"), int):
            section["n"] *= scale
        for item in section.values():
            _multiply_counts(item, scale)


def write_params(folder: Path, corpus: Path, scale: int, synthetic: int | None) -> Path:
    """The project's params for a run at `scale` on `corpus`; its path."""
    params = _repoint(yaml.safe_load((REPO / "params.yaml").read_text()), corpus)
    if synthetic is not None:
        params["sample"]["synthetic"]["n"] = synthetic
    _multiply_counts(params["sample"], scale)
    params["composite"]["count"] *= scale
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _tree_pss(pid: int) -> int:
    """Sum of PSS (bytes) of the descendants of `pid` (not `pid` itself: the wrapper)."""
    if psutil is None:
        return 0
    total = 0
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    for child in children:
        try:
            total += child.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def run_stage(stage: str, folder: Path, env: dict[str, str], log: Path) -> dict[str, float]:
    """Run one stage's flow under the wrapper; its peaks (MiB) and wall time (s)."""
    args = [sys.executable, "-c", WRAPPER, sys.executable, str(REPO / "flows" / f"{stage}.py")]
    started = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(
            args, cwd=folder, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True
        )
        tree = 0
        while process.poll() is None:
            tree = max(tree, _tree_pss(process.pid))
            time.sleep(0.05)
    seconds = time.perf_counter() - started
    text = log.read_text()
    if process.returncode != 0:
        raise RuntimeError(f"{stage} failed ({process.returncode}); see {log}:\n{text[-3000:]}")
    maxrss_kb = int(text.rsplit("MAXRSS_KB", 1)[1].split()[0])
    return {"proc": maxrss_kb / 1024, "tree": tree / 2**20, "seconds": seconds}


def run_scale(root: Path, scale: int, synthetic: int | None, numba: Path) -> dict[str, Any]:
    """Write the corpus and params of one scale and run the four stages; peaks per stage."""
    folder = root / f"x{scale}"
    folder.mkdir(parents=True)
    counts = write_corpus(folder / "corpus", scale)
    write_params(folder, folder / "corpus", scale, synthetic)
    env = {**os.environ, "PREFECT_HOME": str(folder / ".cache" / "prefect")}
    env["NUMBA_CACHE_DIR"] = str(numba)
    peaks = {stage: run_stage(stage, folder, env, folder / f"{stage}.log") for stage in STAGES}
    summary = json.loads((folder / "data/work/samples/summary.json").read_text())
    return {"counts": counts, "items": summary["items"], "units": summary["units"], **peaks}


def _ratio(high: float, low: float) -> str:
    ratio = high / low
    return f"{ratio:5.2f}{'' if ratio <= 1.2 else ' !'}"


def print_table(low: dict[str, Any], high: dict[str, Any], scale: int, psutil_ok: bool) -> None:
    """The peaks of both scales side by side, with the ratios (! marks a ratio over 1.2)."""
    print(
        f"items selected by sample: {low['items']} in {low['units']} units (1x), "
        f"{high['items']} in {high['units']} units ({scale}x)"
    )
    print("proc: largest single process, ru_maxrss (getrusage RUSAGE_CHILDREN of a wrapper)")
    print(
        "tree: largest sum of PSS of the flow and all its descendants (psutil, every 50 ms)"
        if psutil_ok
        else "tree: n/a (psutil is not installed)"
    )
    head = f"{'stage':<10} {'proc 1x':>9} {f'proc {scale}x':>9} {'ratio':>7}"
    head += f" {'tree 1x':>9} {f'tree {scale}x':>9} {'ratio':>7} {'s 1x':>6} {f's {scale}x':>6}"
    print(head)
    for stage in STAGES:
        a, b = low[stage], high[stage]
        row = f"{stage:<10} {a['proc']:8.0f}M {b['proc']:8.0f}M {_ratio(b['proc'], a['proc']):>7}"
        tree = f" {a['tree']:8.0f}M {b['tree']:8.0f}M {_ratio(b['tree'], a['tree']):>7}"
        row += tree if psutil_ok else f" {'n/a':>9} {'n/a':>9} {'':>7}"
        print(row + f" {a['seconds']:6.0f} {b['seconds']:6.0f}")
    print(f"goal: {scale}x / 1x <= 1.2 (! marks a stage over it)")


def main() -> None:
    """Run every data stage at 1x and --scale x the sample; print the peak memory table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10, help="the larger run's multiple")
    parser.add_argument(
        "--synthetic", type=int, default=None, help="sample.synthetic.n at 1x (default: params)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="dicepipe-memory-"))
    numba = root / "numba"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba)}
    subprocess.run([sys.executable, "-c", WARM_NUMBA], env=env, check=True)
    try:
        low = run_scale(root, 1, args.synthetic, numba)
        high = run_scale(root, args.scale, args.synthetic, numba)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print_table(low, high, args.scale, psutil is not None)


if __name__ == "__main__":
    main()

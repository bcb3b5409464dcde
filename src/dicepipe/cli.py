"""`dicepipe` command line: make the sample corpus, inspect shards, predict, merge an adapter."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from dicepipe.config import load_params
from dicepipe.entry import run_command
from dicepipe.params.label import LabelParams
from dicepipe.shards.card import MAX_LISTED_SHARDS, shard_stats
from dicepipe.shards.manifest import (
    MANIFEST_NAME,
    load_problems,
    read_manifest,
    verify_manifest,
)
from dicepipe.sources.synthetic.corpus import write_sample_corpus
from dicepipe.sources.synthetic.matting import write_matting_corpus
from dicepipe.storage import write_json
from dicepipe.tasks import TASK_NAMES
from dicepipe.teachers.audit_run import format_audit, run_audit


def _make_sample(args: argparse.Namespace) -> int:
    summary = write_sample_corpus(Path(args.out), seed=args.seed)
    matting = write_matting_corpus(Path(args.out) / "matting", seed=args.seed)
    summary["matting"] = {"items": len(matting["items"]), "bad": matting["bad"]}
    for name, value in summary.items():
        print(f"{name}: {value}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    shards = Path(args.shards)
    if not (shards / MANIFEST_NAME).exists():
        print(f"{shards}: no {MANIFEST_NAME}; not a shards folder", file=sys.stderr)
        return 1
    manifest = read_manifest(shards)
    problems = verify_manifest(shards)
    try:
        stats = shard_stats(shards, manifest)
    except (OSError, ValueError) as error:  # a missing or unreadable shard: report, no table
        print("\n".join([f"  PROBLEM {p}" for p in problems] + [f"  PROBLEM {error}"]))
        return 1
    listed = {entry["path"] for entry in manifest["shards"]}
    problems += [
        f"{p.name}: not in the manifest"
        for p in sorted(shards.glob("*.parquet"))
        if p.name not in listed
    ]
    problems += [f"{e['path']}: empty shard (0 rows)" for e in manifest["shards"] if not e["rows"]]
    problems += load_problems(shards, manifest["rows"])
    summary = Path(args.summary) if args.summary else shards.parent / "work/encode/summary.json"
    accounting = json.loads(summary.read_text()) if summary.exists() else None
    print("\n".join(format_stats(shards, stats, problems, accounting, args.all)))
    for problem in problems:
        print(f"  PROBLEM {problem}")
    print("sha256 verified" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


def format_stats(
    shards: Path,
    stats: dict[str, Any],
    problems: list[str],
    accounting: dict[str, Any] | None,
    all_shards: bool = False,
) -> list[str]:
    """The lines `dicepipe inspect` prints: the dataset card's statistics as plain text."""

    width = max([len(t) for t in stats["tasks"]] + [5])
    lines = [
        f"{shards}: {len(stats['shards'])} shards, {stats['rows']} rows, {stats['bytes']:,} bytes",
        *_count_lines(stats, width),
        "  " + "task".ljust(width) + "  image sizes (w x h)    teachers",
    ]
    for task, (lo_w, hi_w, lo_h, hi_h) in stats["sizes"].items():
        size = f"{lo_w}-{hi_w} x {lo_h}-{hi_h}"
        lines.append(f"  {task:<{width}}  {size:<22} {', '.join(stats['teachers'][task])}")
    if accounting:
        lines.append(_accounting_line(accounting))
    if all_shards or len(stats["shards"]) <= MAX_LISTED_SHARDS:
        bad = {problem.split(":", 1)[0] for problem in problems}
        for s in stats["shards"]:
            status = "MISMATCH" if s["path"] in bad else "ok"
            lines.append(f"  {s['path']:<40}{s['rows']:>8} rows {s['bytes']:>14,} bytes  {status}")
    return lines


def _count_lines(stats: dict[str, Any], width: int) -> list[str]:
    sources, tasks = stats["sources"], stats["tasks"]
    lines = ["  " + "task".ljust(width) + "".join(f"{s:>12}" for s in sources) + f"{'total':>8}"]
    for task, counts in tasks.items():
        cells = "".join(f"{counts.get(s, 0):>12}" for s in sources)
        lines.append(f"  {task:<{width}}{cells}{sum(counts.values()):>8}")
    totals = "".join(f"{sum(c.get(s, 0) for c in tasks.values()):>12}" for s in sources)
    return [*lines, f"  {'total':<{width}}{totals}{stats['rows']:>8}"]


def _accounting_line(accounting: dict[str, Any]) -> str:
    quarantined = accounting.get("quarantined", {})
    stages = ", ".join(f"{stage} {n}" for stage, n in sorted(quarantined.items()))
    return (
        f"  items: {accounting.get('selected', 0)} selected = {accounting.get('in_shards', 0)}"
        f" in shards + {sum(quarantined.values())} quarantined ({stages})"
    )


def _audit(args: argparse.Namespace) -> int:
    params = load_params(LabelParams, args.params)
    report = run_audit(params, args.teacher, args.scenes, args.width, args.height)
    print(format_audit(report))
    if args.out:
        write_json(args.out, report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="dicepipe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-sample", help="write the synthetic sample corpus")
    make.add_argument("--out", default="data/sample")
    make.add_argument("--seed", type=int, default=0)
    make.set_defaults(run=_make_sample)
    inspect = commands.add_parser(
        "inspect",
        help="statistics, sha256 check and a datasets.load_dataset read of a shards folder",
    )
    inspect.add_argument("shards", nargs="?", default="data/shards")
    inspect.add_argument(
        "--summary", help="encode summary.json (default: <shards>/../work/encode/summary.json)"
    )
    inspect.add_argument("--all", action="store_true", help="list every shard, however many")
    inspect.set_defaults(run=_inspect)
    _add_audit(commands)
    _add_predict(commands)
    _add_merge(commands)
    return parser


DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def device_arg(text: str) -> str:
    """argparse type of --device: auto, cpu, cuda or cuda:N."""
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not one of auto, cpu, cuda, cuda:N")
    return text


def positive_int(text: str) -> int:
    """argparse type of a count or size that must be >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _add_predict(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser("predict", help="run a trained checkpoint on image files")
    predict.add_argument("images", nargs="+", help="image files")
    predict.add_argument("--checkpoint", required=True, help="a model folder (from_pretrained)")
    predict.add_argument("--task", required=True, help=f"one of {', '.join(TASK_NAMES)}")
    predict.add_argument("--lora", help="a LoRA adapter folder (finetune's lora/) to apply")
    predict.add_argument("--out", default="predictions")
    predict.add_argument(
        "--points", nargs="*", default=[], help="prompt points as x,y in pixels (at most 5)"
    )
    predict.add_argument("--steps", type=positive_int, default=28)
    predict.add_argument(
        "--guidance", type=float, default=None, help="default: as the checkpoint was trained"
    )
    predict.add_argument(
        "--one-step",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one deterministic step (default: as the checkpoint was trained)",
    )
    predict.add_argument(
        "--resolution",
        type=positive_int,
        help="square side in pixels, a multiple of the model's patch (default: the training one)",
    )
    predict.add_argument("--seed", type=int, default=0)
    predict.add_argument("--device", type=device_arg, default="auto", help="auto|cpu|cuda|cuda:N")
    predict.set_defaults(run=_predict)


def _parse_points(texts: list[str]) -> list[tuple[float, float]]:
    from dicepipe.model.inference import PredictError  # the model's module imports torch

    points = []
    for text in texts:
        try:
            x, y = (float(v) for v in text.split(","))
        except ValueError:
            raise PredictError(f"point {text!r} is not x,y") from None
        points.append((x, y))
    return points


def _predict(args: argparse.Namespace) -> int:
    from dicepipe.model.inference import PredictError, PredictOptions, run_predict

    if args.task not in TASK_NAMES:
        raise PredictError(f"unknown task {args.task!r}; choose one of {', '.join(TASK_NAMES)}")

    options = PredictOptions(
        task=args.task,
        steps=args.steps,
        guidance=args.guidance,
        one_step=args.one_step,
        resolution=args.resolution,
        seed=args.seed,
        device=args.device,
        lora=args.lora,
    )
    points = _parse_points(args.points)
    written = run_predict(args.checkpoint, args.images, args.out, options, points)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def _add_merge(commands: argparse._SubParsersAction) -> None:
    merge = commands.add_parser(
        "merge", help="fold a LoRA adapter into its base model: a plain model folder"
    )
    merge.add_argument("--base", required=True, help="the base model folder")
    merge.add_argument("--lora", required=True, help="the adapter folder (finetune's lora/)")
    merge.add_argument("--out", required=True, help="the merged model folder (must not exist)")
    merge.set_defaults(run=_merge)


def _merge(args: argparse.Namespace) -> int:
    from dicepipe.model.merge import merge_folder

    out = merge_folder(args.base, args.lora, args.out)
    print(f"wrote {out}")
    return 0


def _add_audit(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser(
        "audit", help="score a teacher against exact labels of synthetic scenes"
    )
    audit.add_argument("--params", default="params.yaml", help="its `label` section is used")
    audit.add_argument("--teacher", choices=["ground_truth", "depth_pro"], default="depth_pro")
    audit.add_argument("--scenes", type=int, default=8)
    audit.add_argument("--width", type=int, default=160)
    audit.add_argument("--height", type=int, default=120)
    audit.add_argument("--out", help="also write the report as JSON here")
    audit.set_defaults(run=_audit)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dicepipe` command."""
    import dicepipe.environment  # noqa: F401 - offline defaults before any Hugging Face import

    args = build_parser().parse_args(argv)
    return run_command(lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())

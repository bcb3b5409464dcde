"""`dicepipe` command line: make the sample corpus, inspect shards."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _make_sample(args: argparse.Namespace) -> int:
    from dicepipe.sources.matting_synthetic import write_matting_corpus
    from dicepipe.sources.sample_corpus import write_sample_corpus

    summary = write_sample_corpus(Path(args.out), seed=args.seed)
    matting = write_matting_corpus(Path(args.out) / "matting", seed=args.seed)
    summary["matting"] = {"items": len(matting["items"]), "bad": matting["bad"]}
    for name, value in summary.items():
        print(f"{name}: {value}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from dicepipe.shards import read_manifest, verify_manifest

    manifest = read_manifest(args.shards)
    print(
        f"{args.shards}: {len(manifest['shards'])} shards, {manifest['rows']} rows,"
        f" {manifest['bytes']:,} bytes"
    )
    for task, count in manifest["tasks"].items():
        print(f"  task   {task:<22} {count:>8}")
    for source, count in manifest.get("sources", {}).items():
        print(f"  source {source:<22} {count:>8}")
    problems = verify_manifest(args.shards)
    for problem in problems:
        print(f"  PROBLEM {problem}")
    print("  sha256 verified" if not problems else f"  {len(problems)} problems")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="dicepipe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-sample", help="write the synthetic sample corpus")
    make.add_argument("--out", default="data/sample")
    make.add_argument("--seed", type=int, default=0)
    make.set_defaults(run=_make_sample)
    inspect = commands.add_parser("inspect", help="statistics and sha256 check of a shards folder")
    inspect.add_argument("shards", nargs="?", default="data/shards")
    inspect.set_defaults(run=_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dicepipe` command."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

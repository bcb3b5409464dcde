"""DVC stage `evaluate`: the trained model on held-out scenes and benchmarks (params `evaluate`).

`python stages/evaluate.py [--params P] [--model DIR]` writes `evaluate.metrics` (DVC
metrics) and, under `evaluate.out`, samples.csv, headline.csv, bars.png, preview-<task>.png.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import dicepipe.environment  # noqa: F401 - offline Hugging Face settings before their import

from dicepipe.config import load_params
from dicepipe.entry import stage_main
from dicepipe.evaluate.report import write_report
from dicepipe.evaluate.run import evaluate_model
from dicepipe.params.evaluate import EvaluateParams


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, evaluate, write the report; the exit status (2: invalid inputs)."""
    return stage_main(_evaluate, __doc__, argv, _model_option)


def _model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model folder (default: evaluate.model)")


def _evaluate(args: argparse.Namespace) -> None:
    params = load_params(EvaluateParams, args.params)
    evaluation = evaluate_model(args.model or params.model, params)
    for path in write_report(evaluation, params.metrics, params.out):
        print(path)


if __name__ == "__main__":
    sys.exit(main())

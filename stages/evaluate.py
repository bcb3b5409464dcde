"""DVC stage `evaluate`: the trained model on held-out scenes and benchmarks (params `evaluate`).

`python stages/evaluate.py [--params P] [--model DIR]` writes `evaluate.metrics` (DVC
metrics) and, under `evaluate.out`, samples.csv, headline.csv, bars.png, preview-<task>.png.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dicepipe.runtime import configure_environment


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, evaluate, write the report; the exit status (2: invalid params)."""
    configure_environment()  # before any Hugging Face import reads the offline settings
    from dicepipe.config import ConfigError
    from dicepipe.evaluate.report import write_report
    from dicepipe.evaluate.run import evaluate_model
    from dicepipe.params import load_evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default=None, help="model folder (default: evaluate.model)")
    args = parser.parse_args(argv)
    try:  # ConfigError covers bad params and a bad model folder (ModelFolderError)
        params = load_evaluate(args.params)
        evaluation = evaluate_model(args.model or params.model, params)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in write_report(evaluation, params.metrics, params.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""DVC stage `train`: the generalist on the shards (params `train` and `loader`).

One process: `python stages/train.py --params params.yaml`; CPU ranks:
`torchrun --standalone --nproc_per_node=2 stages/train.py`; GPUs:
`accelerate launch --multi_gpu stages/train.py`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import dicepipe.environment  # noqa: F401 - offline Hugging Face settings before their import

from dicepipe.config import load_params
from dicepipe.entry import stage_main
from dicepipe.params.loader import LoaderParams
from dicepipe.params.train import TrainParams
from dicepipe.train.loop import train


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `--params`, train; the exit status (2: invalid params or inputs)."""
    return stage_main(_train, __doc__, argv)


def _train(args: argparse.Namespace) -> None:
    params = load_params(TrainParams, args.params)
    train(params, load_params(LoaderParams, args.params))


if __name__ == "__main__":
    sys.exit(main())

"""DVC stage `train`: the generalist on the shards (params `train` and `loader`).

One process: `python stages/train.py --params params.yaml`; CPU ranks:
`torchrun --standalone --nproc_per_node=2 stages/train.py`; GPUs:
`accelerate launch --multi_gpu stages/train.py`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dicepipe.runtime import configure_environment


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `--params`, train, and return the exit status (2 for invalid params)."""
    configure_environment()  # before any Hugging Face import reads the offline settings
    from dicepipe.config import ConfigError
    from dicepipe.params import load_loader, load_train
    from dicepipe.train.loop import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:  # ConfigError covers bad params and a training resolution the model cannot take
        params, loader = load_train(args.params), load_loader(args.params)
        train(params, loader)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""DVC stage `finetune`: few-shot LoRA on a new task (params `finetune`).

`python stages/finetune.py --params params.yaml`
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dicepipe.runtime import configure_environment


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `--params`, finetune, print the summary; the exit status (2: invalid params)."""
    configure_environment()  # before any Hugging Face import reads the offline settings
    from dicepipe.config import ConfigError
    from dicepipe.params import load
    from dicepipe.train.finetune import finetune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:  # ConfigError covers bad params and a bad base folder (ModelFolderError)
        params = load("finetune", args.params)
        summary = finetune(params)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"finetune  {summary['task']}: {summary['examples']} examples, rank {summary['rank']},"
        f" trainable {100 * summary['trainable_fraction']:.2f}%,"
        f" loss {summary['loss_first']:.3f} -> {summary['loss_last']:.3f},"
        f" held-out PSNR {summary.get('heldout_psnr', float('nan')):.2f} dB"
        f" (dark input {summary.get('identity_psnr', float('nan')):.2f} dB),"
        f" adapter reload max diff {summary['reload_max_abs_diff']:.2e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

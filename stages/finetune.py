"""DVC stage `finetune`: few-shot LoRA on a new task (params `finetune`).

`python stages/finetune.py --params params.yaml`
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import dicepipe.environment  # noqa: F401 - offline Hugging Face settings before their import

from dicepipe.config import load_params
from dicepipe.entry import stage_main
from dicepipe.params.finetune import FinetuneParams
from dicepipe.train.finetune import finetune


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `--params`, finetune, print the summary; the exit status (2: invalid inputs)."""
    return stage_main(_finetune, __doc__, argv)


def _finetune(args: argparse.Namespace) -> None:
    summary = finetune(load_params(FinetuneParams, args.params))
    print(
        f"finetune  {summary['task']}: {summary['examples']} examples, rank {summary['rank']},"
        f" trainable {100 * summary['trainable_fraction']:.2f}%,"
        f" loss {summary['loss_first']:.3f} -> {summary['loss_last']:.3f},"
        f" held-out PSNR {summary.get('heldout_psnr', float('nan')):.2f} dB"
        f" (dark input {summary.get('identity_psnr', float('nan')):.2f} dB),"
        f" adapter reload max diff {summary['reload_max_abs_diff']:.2e}"
    )


if __name__ == "__main__":
    sys.exit(main())

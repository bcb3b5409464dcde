"""One entry for every flow, stage script and CLI command.

`run_command` turns what a user can fix (`dicepipe.errors.UserError`: bad params, a missing
or broken model folder, missing weights) into `error: ...` on stderr and exit status 2, any
other failure into `error: <type>: ...` and status 1. `stage_main` is the command line of a
DVC stage script; `dicepipe.runtime.flow_main` that of a data-stage flow.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from dicepipe.errors import UserError


def run_command(action: Callable[[], int | None]) -> int:
    """Run `action` for a command line; the exit status: the action's own (None: 0), 2 for a
    UserError, 1 for any other failure."""
    try:
        status = action()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - every failure becomes an exit status
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0 if status is None else status


def parser_for(description: str | None, folders: dict[str, str] | None = None) -> Any:
    """An argument parser with `--params` and one `--NAME DIR` option per folder."""
    parser = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file")
    for name, default in (folders or {}).items():
        parser.add_argument(f"--{name}", default=default, help=f"default: {default}")
    return parser


def stage_main(
    run: Callable[[argparse.Namespace], None],
    description: str | None,
    argv: Sequence[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """The command line of a DVC stage script: parse, then `run(args)` under `run_command`."""
    parser = parser_for(description)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    return run_command(lambda: run(args))

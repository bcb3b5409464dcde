"""Prefect flow `reevaluate`: evaluate every new checkpoint once (one task per checkpoint).

`python flows/reevaluate.py` runs it once; `python flows/reevaluate.py serve` serves it on the
schedule of `evaluate.reevaluate` (interval or cron; needs `prefect server start` and
PREFECT_API_URL); `prefect deploy` uses prefect.yaml (entrypoint flows/reevaluate.py:reevaluate).
"""

from __future__ import annotations

import sys
from typing import Any

import dicepipe.environment  # noqa: F401 - configures Prefect before its import

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from dicepipe.config import load_params
from dicepipe.entry import parser_for, run_command
from dicepipe.evaluate.history import Checkpoint, HistoryBusy, schedule
from dicepipe.evaluate.reevaluation import (
    evaluate_or_report,
    reevaluate_once,
    run_markdown,
)
from dicepipe.params.evaluate import EvaluateParams
from dicepipe.runtime import make_task_runner, publish_summary, run_tasks

DEPLOYMENT = "reevaluate"


@task(cache_policy=NO_CACHE, task_run_name="evaluate {checkpoint.folder}")
def evaluate_one(checkpoint: Checkpoint, params: EvaluateParams) -> dict[str, Any]:
    """Evaluate one checkpoint and record it; failures come back as a result, not raised."""
    return evaluate_or_report(checkpoint, params)


@flow(name="reevaluate", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def reevaluate(params_path: str = "params.yaml") -> list[dict[str, Any]]:
    """Find the checkpoints not yet evaluated (by weights sha256) and evaluate each once."""
    params = load_params(EvaluateParams, params_path)
    try:
        table = reevaluate_once(
            params, lambda todo: run_tasks(evaluate_one, todo, params, label="checkpoints")
        )
    except HistoryBusy as busy:
        print(f"skipped: {busy}")
        return []
    text = run_markdown(table)
    print(text)
    publish_summary("reevaluate", table or [{"status": "no checkpoint found"}], text)
    return table


def _deployment_options(params_path: str) -> dict[str, Any]:
    params = load_params(EvaluateParams, params_path)
    return {"parameters": {"params_path": params_path}, **schedule(params.reevaluate)}


def deployment(params_path: str = "params.yaml") -> Any:
    """The deployment `serve` runs, built without a server: schedule from params, one run at
    a time (`prefect deploy` reads the same from prefect.yaml)."""
    return reevaluate.to_deployment(
        name=DEPLOYMENT, concurrency_limit=1, **_deployment_options(params_path)
    )


def main(argv: list[str] | None = None) -> int:
    """`python flows/reevaluate.py [once|serve] [--params P]`."""
    parser = parser_for(__doc__)
    parser.add_argument("mode", nargs="?", choices=("once", "serve"), default="once")
    args = parser.parse_args(argv)

    def run() -> None:
        params = load_params(EvaluateParams, args.params)
        if args.mode == "serve":
            # Served runs load the flow from this file in a subprocess: they use the flow's own
            # thread-pool runner (two checkpoints side by side), not `reevaluate.runner`.
            reevaluate.serve(name=DEPLOYMENT, global_limit=1, **_deployment_options(args.params))
            return
        runner = make_task_runner(params.reevaluate.runner)
        reevaluate.with_options(task_runner=runner)(args.params)

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())

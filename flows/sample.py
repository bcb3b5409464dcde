"""Prefect flow of the `sample` stage: one task per input shard (index block or SA-1B tar)."""

from __future__ import annotations

import sys

import dicepipe.environment  # noqa: F401 - configures Prefect before its import

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from dicepipe.config import load_params
from dicepipe.params.sample import SampleParams
from dicepipe.pipeline import sample
from dicepipe.pipeline.summary import sample_summary, sample_text
from dicepipe.pipeline.units import remove_stale
from dicepipe.runtime import flow_main, publish_summary, run_tasks
from dicepipe.storage import Location, location, write_json


@task(cache_policy=NO_CACHE)
def sample_unit(unit: sample.Unit, params: SampleParams, out_dir: Location) -> dict:
    """Materialise one input shard's selected items."""
    return sample.run_unit(unit, params, out_dir)


@flow(name="sample", log_prints=False)
def sample_flow(params_path: str = "params.yaml", out: str = "data/work/samples") -> dict:
    """Select items from every configured source and write them per input shard."""
    params = load_params(SampleParams, params_path)
    out_dir = location(out)
    units = sample.plan(params, out_dir)
    manifests = run_tasks(
        sample_unit,
        units,
        params,
        out_dir,
        label="sample",
        resources=params.runner.task_resources(),
    )
    remove_stale(out_dir, [u.name for u in units])
    summary = sample_summary(manifests, out_dir)
    write_json(out_dir / "summary.json", summary)
    text = sample_text(summary)
    print(text)
    publish_summary("sample", [dict(source=k, **v) for k, v in summary["sources"].items()], text)
    if not summary["balanced"]:
        raise RuntimeError("sample: selected items and rows + quarantined do not add up")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: `python flows/sample.py [--params P] [--FOLDER DIR ...]`."""
    return flow_main(sample_flow, "sample", SampleParams, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

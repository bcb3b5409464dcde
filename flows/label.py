"""Prefect flow of the `label` stage: one task per sampled unit, through the teacher interface."""

from __future__ import annotations

import sys

import dicepipe.environment  # noqa: F401 - configures Prefect before its import

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from dicepipe.config import load_params
from dicepipe.layout import LABELS, SAMPLES
from dicepipe.params.label import LabelParams
from dicepipe.pipeline import label
from dicepipe.pipeline.summary import label_text, unit_totals
from dicepipe.pipeline.units import remove_stale
from dicepipe.runtime import flow_main, publish_summary, run_tasks
from dicepipe.storage import Location, location, write_json
from dicepipe.teachers import built_teacher, check_teacher, shared_teacher


@task(cache_policy=NO_CACHE)
def label_unit(sample_path: Location, params: LabelParams, out_dir: Location) -> dict:
    """Label one sampled unit."""
    return label.run_unit(sample_path, shared_teacher(params), params, out_dir)


@flow(name="label", log_prints=False)
def label_flow(
    params_path: str = "params.yaml",
    samples: str = SAMPLES,
    out: str = LABELS,
) -> dict:
    """Label every sampled unit of the configured sources."""
    params = load_params(LabelParams, params_path)
    check_teacher(params)
    out_dir = location(out)
    paths = label.plan(params, location(samples))
    manifests = run_tasks(
        label_unit,
        paths,
        params,
        out_dir,
        label="label",
        resources=params.runner.task_resources(),
    )
    remove_stale(out_dir, [p.stem for p in paths])
    summary = {"teacher": params.teacher, **unit_totals(manifests, out_dir)}
    summary.update(label.cache_counts(built_teacher(params)))
    write_json(out_dir / "summary.json", summary)
    text = label_text(summary)
    print(text)
    publish_summary("label", list(manifests), text)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: `python flows/label.py [--params P] [--FOLDER DIR ...]`."""
    return flow_main(label_flow, "label", LabelParams, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

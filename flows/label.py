"""Prefect flow of the `label` stage: one task per sampled unit, through the teacher interface."""

from __future__ import annotations

import sys
from pathlib import Path

from dicepipe.runtime import configure_environment

configure_environment()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from dicepipe.params import LabelParams, load_label  # noqa: E402
from dicepipe.pipeline import label  # noqa: E402
from dicepipe.pipeline.summary import label_text, unit_totals  # noqa: E402
from dicepipe.pipeline.units import remove_stale  # noqa: E402
from dicepipe.runtime import publish_summary, run_tasks, stage_main  # noqa: E402
from dicepipe.storage import write_json  # noqa: E402
from dicepipe.teachers import built_teacher, check_teacher, shared_teacher  # noqa: E402


@task(cache_policy=NO_CACHE)
def label_unit(sample_path: Path, params: LabelParams, out_dir: Path) -> dict:
    """Label one sampled unit."""
    return label.run_unit(sample_path, shared_teacher(params), params, out_dir)


@flow(name="label", log_prints=False)
def label_flow(
    params_path: str = "params.yaml",
    samples: str = "data/work/samples",
    out: str = "data/work/labels",
) -> dict:
    """Label every sampled unit of the configured sources."""
    params = load_label(params_path)
    check_teacher(params)
    out_dir = Path(out)
    paths = label.plan(params, Path(samples))
    manifests = run_tasks(label_unit, paths, params, out_dir, label="label")
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
    folders = {"samples": "data/work/samples", "out": "data/work/labels"}
    return stage_main(label_flow, "label", folders, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())

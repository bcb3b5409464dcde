"""Prefect flow of the `sample` stage: one task per input shard (index block or SA-1B tar)."""

from __future__ import annotations

import sys
from pathlib import Path

from dicepipe.runtime import configure_environment

configure_environment()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from dicepipe.params import SampleParams, load_sample  # noqa: E402
from dicepipe.pipeline import sample  # noqa: E402
from dicepipe.pipeline.summary import sample_summary, sample_text  # noqa: E402
from dicepipe.pipeline.units import remove_stale  # noqa: E402
from dicepipe.runtime import publish_summary, run_tasks, stage_main  # noqa: E402
from dicepipe.storage import write_json  # noqa: E402


@task(cache_policy=NO_CACHE)
def sample_unit(unit: sample.Unit, params: SampleParams, out_dir: Path) -> dict:
    """Materialise one input shard's selected items."""
    return sample.run_unit(unit, params, out_dir)


@flow(name="sample", log_prints=False)
def sample_flow(params_path: str = "params.yaml", out: str = "data/work/samples") -> dict:
    """Select items from every configured source and write them per input shard."""
    params = load_sample(params_path)
    out_dir = Path(out)
    units = sample.plan(params, out_dir)
    manifests = run_tasks(sample_unit, units, params, out_dir, label="sample")
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
    folders = {"out": "data/work/samples"}
    return stage_main(sample_flow, "sample", folders, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())

"""Prefect flow of the `composite` stage: foreground checks, then one task per index block."""

from __future__ import annotations

import sys
from pathlib import Path

import dicepipe.environment  # noqa: F401 - configures Prefect before its import

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from dicepipe.config import load_params
from dicepipe.layout import CACHE_DIR, COMPOSITES, SAMPLES
from dicepipe.params.composite import CompositeStageParams
from dicepipe.pipeline import composite
from dicepipe.pipeline.summary import composite_summary, composite_text
from dicepipe.pipeline.units import remove_stale
from dicepipe.runtime import flow_main, publish_summary, run_tasks
from dicepipe.storage import Location, location, write_json

FOREGROUND_ERRORS = "foregrounds/errors.parquet"


@task(cache_policy=NO_CACHE)
def composite_unit(
    block: tuple[int, int],
    params: CompositeStageParams,
    foregrounds: list,
    pool: composite.PoolRef,
    cache_dir: Path,
    out_dir: Location,
) -> dict:
    """Make one block of composites."""
    return composite.run_unit(block, params, foregrounds, pool, cache_dir, out_dir)


@flow(name="composite", log_prints=False)
def composite_flow(
    params_path: str = "params.yaml",
    samples: str = SAMPLES,
    out: str = COMPOSITES,
    cache: str = str(CACHE_DIR / "foregrounds"),
) -> dict:
    """Check every foreground once (cached colour estimate), then make the composites."""
    params = load_params(CompositeStageParams, params_path)
    out_dir, cache_dir = location(out), Path(cache)
    refs = composite.foreground_refs(params)
    good = set(composite.check_foregrounds(refs, cache_dir, out_dir / FOREGROUND_ERRORS))
    usable = [(root, ref) for root, ref in refs if ref.key in good]
    samples_dir = location(samples)
    backgrounds = composite.background_pool(params, samples_dir)
    pool = composite.write_pool(backgrounds, out_dir / "pool", samples_dir)
    blocks = composite.plan(params)
    manifests = run_tasks(
        composite_unit,
        blocks,
        params,
        usable,
        pool,
        cache_dir,
        out_dir,
        label="composite",
        resources=params.runner.task_resources(),
    )
    names = [composite.unit_name(b, params) for b in blocks]
    remove_stale(out_dir, names)
    summary = composite_summary(
        params.count,
        len(refs),
        len(usable),
        out_dir / FOREGROUND_ERRORS,
        pool.size,
        manifests,
        out_dir,
    )
    write_json(out_dir / "summary.json", summary)
    composite.write_preview(out_dir, out_dir / "preview.png")
    text = composite_text(summary)
    print(text)
    publish_summary("composite", list(manifests), text)
    if not summary["balanced"]:
        raise RuntimeError("composite: made + quarantined does not add up to the count")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: `python flows/composite.py [--params P] [--FOLDER DIR ...]`."""
    return flow_main(composite_flow, "composite", CompositeStageParams, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

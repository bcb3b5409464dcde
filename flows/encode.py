"""Prefect flow of the `encode` stage: one task per sampled unit, each writing one shard."""

from __future__ import annotations

import sys

import dicepipe.environment  # noqa: F401 - configures Prefect before its import

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from dicepipe.config import load_params
from dicepipe.layout import COMPOSITES, ENCODE_WORK, LABELS, SAMPLES, SHARDS
from dicepipe.params.encode import EncodeParams
from dicepipe.pipeline import encode
from dicepipe.pipeline.summary import format_summary, item_accounting, reasons
from dicepipe.pipeline.units import remove_stale
from dicepipe.runtime import flow_main, publish_summary, run_tasks
from dicepipe.shards.card import write_card
from dicepipe.shards.manifest import rows_per_source, write_manifest
from dicepipe.storage import Location, location, write_json
from dicepipe.targets.layout_colors import instance_color_note


@task(cache_policy=NO_CACHE)
def encode_unit(
    sample_path: Location,
    labels_dir: Location,
    params: EncodeParams,
    shards_dir: Location,
    work_dir: Location,
) -> dict:
    """Encode one sampled unit into one shard."""
    return encode.run_unit(sample_path, labels_dir, params, shards_dir, work_dir)


@flow(name="encode", log_prints=False)
def encode_flow(
    params_path: str = "params.yaml",
    samples: str = SAMPLES,
    labels: str = LABELS,
    composites: str = COMPOSITES,
    shards: str = SHARDS,
    work: str = ENCODE_WORK,
) -> dict:
    """Encode every sampled unit into training shards and write the manifest and summary."""
    params = load_params(EncodeParams, params_path)
    samples_dir, labels_dir = location(samples), location(labels)
    composites_dir, shards_dir, work_dir = location(composites), location(shards), location(work)
    paths = encode.plan(samples_dir, composites_dir)
    results = run_tasks(
        encode_unit,
        paths,
        labels_dir,
        params,
        shards_dir,
        work_dir,
        label="encode",
        resources=params.runner.task_resources(),
    )
    entries = [entry for result in results for entry in result["shards"]]
    remove_stale(shards_dir, [e["path"].removesuffix(".parquet") for e in entries])
    remove_stale(work_dir, [p.stem for p in paths])
    sources = rows_per_source(shards_dir)
    accounting = item_accounting(samples_dir, labels_dir, composites_dir, work_dir, shards_dir)
    manifest = write_manifest(
        shards_dir,
        entries,
        sources=dict(sorted(sources.items())),
        instance_colors=instance_color_note(params.colors.scheme, params.colors.min_black_distance),
    )
    summary = {**accounting, "encode_reasons": reasons(work_dir)}
    write_json(work_dir / "summary.json", summary)
    write_card(shards_dir, manifest, params, summary)
    text = format_summary(manifest, accounting)
    print(text)
    publish_summary("encode", manifest["shards"], text)
    if not accounting["balanced"]:
        raise RuntimeError("encode: items in shards + quarantined do not add up to the sample")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: `python flows/encode.py [--params P] [--FOLDER DIR ...]`."""
    return flow_main(encode_flow, "encode", EncodeParams, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

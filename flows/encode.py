"""Prefect flow of the `encode` stage: one task per sampled unit, each writing one shard."""

from __future__ import annotations

import sys
from pathlib import Path

from dicepipe.runtime import configure_environment

configure_environment()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from dicepipe.params import EncodeParams, load_encode  # noqa: E402
from dicepipe.pipeline import encode  # noqa: E402
from dicepipe.pipeline.summary import format_summary, item_accounting, reasons  # noqa: E402
from dicepipe.pipeline.units import remove_stale  # noqa: E402
from dicepipe.runtime import publish_summary, run_tasks, stage_main  # noqa: E402
from dicepipe.shards.card import write_card  # noqa: E402
from dicepipe.shards.manifest import rows_per_source, write_manifest  # noqa: E402
from dicepipe.storage import write_json  # noqa: E402


@task(cache_policy=NO_CACHE)
def encode_unit(
    sample_path: Path, labels_dir: Path, params: EncodeParams, shards_dir: Path, work_dir: Path
) -> dict:
    """Encode one sampled unit into one shard."""
    return encode.run_unit(sample_path, labels_dir, params, shards_dir, work_dir)


@flow(name="encode", log_prints=False)
def encode_flow(
    params_path: str = "params.yaml",
    samples: str = "data/work/samples",
    labels: str = "data/work/labels",
    composites: str = "data/work/composites",
    shards: str = "data/shards",
    work: str = "data/work/encode",
) -> dict:
    """Encode every sampled unit into training shards and write the manifest and summary."""
    params = load_encode(params_path)
    samples_dir, labels_dir, composites_dir = Path(samples), Path(labels), Path(composites)
    shards_dir, work_dir = Path(shards), Path(work)
    paths = encode.plan(samples_dir, composites_dir)
    results = run_tasks(
        encode_unit, paths, labels_dir, params, shards_dir, work_dir, label="encode"
    )
    entries = [entry for result in results for entry in result["shards"]]
    remove_stale(shards_dir, [Path(e["path"]).stem for e in entries])
    remove_stale(work_dir, [p.stem for p in paths])
    sources = rows_per_source(shards_dir)
    accounting = item_accounting(samples_dir, labels_dir, composites_dir, work_dir, shards_dir)
    manifest = write_manifest(
        shards_dir,
        entries,
        sources=dict(sorted(sources.items())),
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
    folders = {
        "samples": "data/work/samples",
        "labels": "data/work/labels",
        "composites": "data/work/composites",
        "shards": "data/shards",
        "work": "data/work/encode",
    }
    return stage_main(encode_flow, "encode", folders, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())

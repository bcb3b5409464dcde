"""The `sample` stage: pick items from every source and materialise them per input shard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dicepipe import __version__
from dicepipe.params import SampleParams
from dicepipe.pipeline.units import is_done, unit_manifest, write_unit
from dicepipe.records import SAMPLE_SCHEMA
from dicepipe.sources import coco, openimages, sa1b
from dicepipe.sources.common import Unit
from dicepipe.storage import digest_of

STAGE = "sample"
READERS: dict[str, Callable[[Unit, int], tuple[list[dict], list]]] = {
    openimages.SOURCE: openimages.read_unit,
    sa1b.SOURCE: sa1b.read_unit,
    coco.SOURCE: coco.read_unit,
}


def plan(params: SampleParams) -> list[Unit]:
    """Every work unit of the sample, in a fixed order: OpenImages blocks, SA-1B tars, COCO."""
    return (
        openimages.plan_units(params.openimages, params.seed)
        + sa1b.plan_units(params.sa1b, params.seed)
        + coco.plan_units(params.coco, params.seed)
    )


def run_unit(unit: Unit, params: SampleParams, out_dir: Path) -> dict[str, Any]:
    """Read one unit's selected items into `<out_dir>/<unit>.parquet`, quarantining failures.

    A unit already written with the same fingerprint (unit, limits, code version) is skipped,
    so a re-run after a kill redoes only the missing units.
    """
    fingerprint = digest_of(STAGE, unit, params.max_pixels, __version__)
    if not is_done(out_dir, unit.name, fingerprint):
        rows, errors = READERS[unit.source](unit, params.max_pixels)
        write_unit(out_dir, unit.name, rows, SAMPLE_SCHEMA, errors, STAGE, fingerprint)
    return {**unit_manifest(out_dir, unit.name), "source": unit.source, "items": len(unit.items)}

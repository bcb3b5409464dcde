"""Stage summaries: counts per source/task, quarantine reasons, and the accounting check."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from dicepipe.pipeline.units import file_keys, read_quarantine
from dicepipe.storage import Location, listing, read_table


def reasons(out_dir: Location) -> dict[str, int]:
    """Quarantined rows of a stage folder, counted by reason."""
    return _count_reasons(read_quarantine(out_dir))


def reasons_of(path: Location) -> dict[str, int]:
    """Rows of one quarantine file, counted by reason."""
    return _count_reasons(read_table(path)) if path.exists() else {}


def _count_reasons(table: Any) -> dict[str, int]:
    return dict(sorted(Counter(table["reason"].to_pylist()).items()))


def sample_summary(manifests: Sequence[dict[str, Any]], out_dir: Location) -> dict[str, Any]:
    """Per-source selected/rows/quarantined counts; `balanced` says every item is accounted for."""
    sources: dict[str, Counter[str]] = {}
    for m in manifests:
        sources.setdefault(m["source"], Counter()).update(
            items=m["items"], rows=m["rows"], quarantined=m["quarantined"]
        )
    per_source = {name: dict(counts) for name, counts in sorted(sources.items())}
    dropped: Counter[str] = Counter()
    for m in manifests:
        dropped.update(m.get("dropped_annotations", {}))
    return {
        "dropped_annotations": dict(sorted(dropped.items())),
        "sources": per_source,
        "units": len(manifests),
        "items": sum(c["items"] for c in per_source.values()),
        "rows": sum(c["rows"] for c in per_source.values()),
        "quarantined": sum(c["quarantined"] for c in per_source.values()),
        "reasons": reasons(out_dir),
        "balanced": all(c["items"] == c["rows"] + c["quarantined"] for c in per_source.values()),
    }


def unit_totals(manifests: Sequence[dict[str, Any]], out_dir: Location) -> dict[str, Any]:
    """Rows and quarantined counts of a stage whose units map one-to-one to input units."""
    return {
        "units": len(manifests),
        "rows": sum(m["rows"] for m in manifests),
        "quarantined": sum(m["quarantined"] for m in manifests),
        "reasons": reasons(out_dir),
    }


def _keys(folder: Location) -> set[str]:
    return {key for path in listing(folder, "*.parquet") for key in file_keys(path)}


def item_accounting(
    samples_dir: Location,
    labels_dir: Location,
    composites_dir: Location,
    encode_dir: Location,
    shards_dir: Location,
) -> dict[str, Any]:
    """Where every selected item (and every composite) ended: the shards or one quarantine."""
    produced = _keys(samples_dir) | _keys(composites_dir)
    stages = (
        ("sample", samples_dir),
        ("label", labels_dir),
        ("composite", composites_dir),
        ("encode", encode_dir),
    )
    quarantined = {
        stage: set(read_quarantine(folder)["key"].to_pylist()) for stage, folder in stages
    }
    in_shards = _keys(shards_dir)
    later = quarantined["label"] | quarantined["encode"]
    return {
        "selected": len(produced) + len(quarantined["sample"]) + len(quarantined["composite"]),
        "in_shards": len(in_shards),
        "quarantined": {stage: len(keys) for stage, keys in quarantined.items()},
        # An item whose labelling failed may still be in the shards with its other tasks.
        "balanced": in_shards.isdisjoint(quarantined["encode"]) and produced == in_shards | later,
    }


def format_summary(encode: dict[str, Any], accounting: dict[str, Any]) -> str:
    """The human-readable end-of-pipeline summary."""
    q = accounting["quarantined"]
    lines = [
        "dicepipe shards",
        f"  shards  {len(encode['shards'])}  rows {encode['rows']}  bytes {encode['bytes']:,}",
        "  tasks   " + "  ".join(f"{t} {n}" for t, n in encode["tasks"].items()),
        "  rows per source " + "  ".join(f"{s} {n}" for s, n in encode.get("sources", {}).items()),
        f"  items   selected {accounting['selected']} = {accounting['in_shards']} in shards"
        f" + {sum(q.values())} quarantined ("
        + ", ".join(f"{stage} {count}" for stage, count in q.items())
        + f")  {'OK' if accounting['balanced'] else 'MISMATCH'}",
    ]
    return "\n".join(lines)


def sample_text(summary: dict[str, Any]) -> str:
    """The sample stage's printed summary: per source, selected = rows + quarantined."""
    lines = [
        f"sample  {name:<11} selected {c['items']:>6} = rows {c['rows']:>6}"
        f" + quarantined {c['quarantined']}"
        for name, c in summary["sources"].items()
    ]
    lines.append(
        f"sample  reasons {summary['reasons']}  dropped annotations"
        f" {summary['dropped_annotations']}  balanced {summary['balanced']}"
    )
    return "\n".join(lines)


def label_text(summary: dict[str, Any]) -> str:
    """The label stage's printed summary: rows, quarantine, and model-label cache counts."""
    cache = (
        f"  computed {summary['computed']}  from cache {summary['from_cache']}"
        if summary.get("computed") is not None
        else "  (no model labels counted in this process: exact labels only, or Dask workers)"
    )
    return (
        f"label   teacher {summary['teacher']}  rows {summary['rows']}"
        f"  quarantined {summary['quarantined']}  reasons {summary['reasons']}" + cache
    )


def composite_summary(
    count: int,
    listed: int,
    usable: int,
    foreground_errors: Location,
    backgrounds: int,
    manifests: Sequence[dict[str, Any]],
    out_dir: Location,
) -> dict[str, Any]:
    """The composite stage's summary: made + quarantined must add up to `count`."""
    totals = unit_totals(manifests, out_dir)
    return {
        "count": count,
        "foregrounds": {
            "listed": listed,
            "usable": usable,
            "reasons": reasons_of(foreground_errors),
        },
        "backgrounds": backgrounds,
        **totals,
        "balanced": totals["rows"] + totals["quarantined"] == count,
    }


def composite_text(summary: dict[str, Any]) -> str:
    """The composite stage's printed summary."""
    foregrounds = summary["foregrounds"]
    return (
        f"composite  made {summary['rows']} of {summary['count']}"
        f" (quarantined {summary['quarantined']}: {summary['reasons']})"
        f"  foregrounds {foregrounds['usable']}/{foregrounds['listed']} usable"
        f" {foregrounds['reasons']}  backgrounds {summary['backgrounds']}"
    )

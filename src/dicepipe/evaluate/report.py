"""Evaluation outputs: the DVC metrics JSON, a per-sample CSV, the headline table and its
bar chart (PNG: DVC's HTML plots need a CDN), and preview grids (input | target | prediction).

Files under `out`: `samples.csv`, `headline.csv`, `bars.png`, `preview-<task>.png`,
`run.json` (checkpoint, resolution, sampling, what the baselines are, what was skipped, and
a warning for every task whose predictions mostly decode to nothing: flat depth or normal
maps, empty point masks, no entity mask, no keypoint). Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from dicepipe.evaluate.run import Evaluation
from dicepipe.evaluate.scoring import HEADLINE
from dicepipe.storage import Location, atomic_write, listing, location, write_json

ROW_HEAD = ("benchmark", "task", "sample", "item", "system")
EMPTY_WARNING = 0.5  # warn when more than this share of a task's predictions decode to nothing


def headline(metrics: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (benchmark, task, headline metric): model and baseline values."""
    rows = []
    for benchmark, tasks in metrics.items():
        for task, systems in tasks.items():
            for metric, higher in HEADLINE.get(task, ()):
                if metric not in systems["model"]:
                    continue
                rows.append(
                    {
                        "label": f"{benchmark}/{task}/{metric}",
                        "benchmark": benchmark,
                        "task": task,
                        "metric": metric,
                        "better": "higher" if higher else "lower",
                        "model": systems["model"][metric],
                        "baseline": systems["baseline"].get(metric),
                    }
                )
    return rows


def empty_warnings(
    metrics: dict[str, dict[str, dict[str, Any]]], threshold: float = EMPTY_WARNING
) -> list[str]:
    """A warning line per (benchmark, task) whose `empty_predictions` share exceeds
    `threshold`."""
    lines = []
    for benchmark, tasks in metrics.items():
        for task, systems in tasks.items():
            share = systems["model"].get("empty_predictions")
            if share is not None and share > threshold:
                lines.append(
                    f"warning: {benchmark}/{task}: {share:.0%} of the model's predictions "
                    "decode to nothing (flat map, empty mask, no entity or keypoint)"
                )
    return lines


def bars(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The headline in long form, one bar per (metric, system), as DVC's bar templates take
    it (`x: value`, `y: bar`)."""
    long = []
    for row in rows:
        arrow = "↑" if row["better"] == "higher" else "↓"
        for system in ("model", "baseline"):
            if row[system] is not None:
                bar = f"{row['label']} {arrow} | {system}"
                long.append({"bar": bar, "value": row[system], "system": system, **_key(row)})
    return long


def _key(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in ("benchmark", "task", "metric", "better")}


def write_csv(path: Path, rows: list[dict[str, Any]], head: tuple[str, ...] = ()) -> None:
    """Rows as CSV: the `head` columns first, then every other key sorted; blanks where a
    row lacks a column."""
    extra = sorted({key for row in rows for key in row} - set(head))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [*head, *extra], restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue().encode()))


def write_png(path: Path, figure: Any) -> None:
    """Save a matplotlib Figure as PNG, atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def bar_chart(rows: list[dict[str, Any]]) -> Any:
    """One panel per task: model vs baseline on each benchmark's headline metrics."""
    from matplotlib.figure import Figure

    tasks = list(dict.fromkeys(row["task"] for row in rows)) or ["(nothing scored)"]
    figure = Figure(figsize=(3.2 * len(tasks), 3.4))
    for axes, task in zip(figure.subplots(1, len(tasks), squeeze=False)[0], tasks, strict=True):
        chosen = [row for row in rows if row["task"] == task]
        positions = range(len(chosen))
        for offset, system in ((-0.2, "model"), (0.2, "baseline")):
            values = [row[system] if row[system] is not None else 0.0 for row in chosen]
            axes.bar([p + offset for p in positions], values, width=0.4, label=system)
        labels = [
            f"{r['benchmark']}\n{r['metric']} {'↑' if r['better'] == 'higher' else '↓'}"
            for r in chosen
        ]
        axes.set_xticks(list(positions), labels, fontsize=8)
        axes.set_title(task, fontsize=10)
        axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def write_previews(out: Location, previews: dict[str, list[list[Any]]]) -> list[Location]:
    """One grid per task (rows: input | target | prediction); stale grids are removed."""
    from dicepipe.imageio import encode_png
    from dicepipe.shards.preview import grid

    written = []
    for task, rows in previews.items():
        if rows:
            path = out / f"preview-{task}.png"
            titles = ("input", "ground truth", "prediction")
            data = encode_png(grid(rows, tile=128, titles=titles))
            atomic_write(path, lambda handle, data=data: handle.write(data))
            written.append(path)
    keep = {path.name for path in written}
    for stale in listing(out, "preview-*.png"):
        if stale.name not in keep:
            stale.unlink()
    return written


def write_report(
    evaluation: Evaluation, metrics_path: str | Location, out: str | Location
) -> list[Location]:
    """Write every output of an evaluation; the paths written."""
    out, metrics_path = location(out), location(metrics_path)  # folders or fsspec URLs
    write_json(metrics_path, evaluation.metrics)
    write_csv(out / "samples.csv", evaluation.rows, ROW_HEAD)
    rows = headline(evaluation.metrics)
    write_csv(out / "headline.csv", bars(rows), ("bar", "value"))
    write_png(out / "bars.png", bar_chart(rows))
    previews = write_previews(out, evaluation.previews)
    sampling = evaluation.info.get("sampling_warnings", [])
    warnings = [f"warning: evaluate.sampling: {line}" for line in sampling]
    warnings += empty_warnings(evaluation.metrics)
    for line in warnings:
        print(line, file=sys.stderr)
    info = {**evaluation.info, "skipped": evaluation.skipped, "warnings": warnings}
    write_json(out / "run.json", info)
    names = ("samples.csv", "headline.csv", "bars.png", "run.json")
    return [metrics_path, *(out / name for name in names), *previews]

"""One re-evaluation run: plan, evaluate what is new, sync the log, redraw the metric-vs-step
PNG, and the run's table and markdown summary (the flow publishes them as Prefect artifacts).

`reevaluate_once` takes the function that evaluates the pending checkpoints, so the flow maps
them onto Prefect tasks (side by side on its task runner) while tests call them in a loop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dicepipe.evaluate.history import (
    Checkpoint,
    CheckpointError,
    Plan,
    evaluate_checkpoint,
    history_lock,
    plan,
    read_log,
    sync_log,
)
from dicepipe.evaluate.report import write_png
from dicepipe.params import EvaluateParams

Evaluator = Callable[[list[Checkpoint]], list[dict[str, Any]]]


def evaluate_or_report(checkpoint: Checkpoint, params: EvaluateParams) -> dict[str, Any]:
    """Evaluate one checkpoint; any failure is returned as a `failed` result (and nothing is
    recorded, so a later run retries it), never raised: one bad checkpoint stops no other."""
    result = {"folder": checkpoint.folder, "step": checkpoint.step, "sha256": checkpoint.sha256}
    try:
        record = evaluate_checkpoint(checkpoint, params)
    except CheckpointError as error:
        return {**result, "status": "broken", "error": str(error)}
    except Exception as error:  # noqa: BLE001 - reported in the run table, retried next run
        return {**result, "status": "failed", "error": f"{type(error).__name__}: {error}"}
    return {**result, "status": "evaluated", "headline": record["headline"]}


def reevaluate_once(
    params: EvaluateParams, evaluate_all: Evaluator | None = None
) -> list[dict[str, Any]]:
    """Evaluate every new checkpoint once (HistoryBusy while another run holds the lock);
    the run table (`run_table`)."""
    section = params.reevaluate
    evaluate_all = evaluate_all or (lambda todo: [evaluate_or_report(c, params) for c in todo])
    with history_lock(section.history):
        todo = plan(section)
        results = evaluate_all(todo.pending) if todo.pending else []
        sync_log(section.history, section.log)
        draw_history(section.log, section.plot)
    return run_table(todo, results)


def draw_history(log: str | Path, plot: str | Path) -> bool:
    """Redraw the model's headline metrics against the training step (baseline dashed) from
    the log; False (nothing drawn) while no logged checkpoint has a step."""
    from matplotlib.figure import Figure

    records = [r for r in read_log(log) if r.get("step") is not None]
    if not records:
        return False
    records.sort(key=lambda r: r["step"])
    labels = sorted(
        {key.rsplit("/", 1)[0] for r in records for key in r["headline"] if key.endswith("/model")}
    )
    if not labels:
        return False
    columns = min(3, len(labels))
    rows = -(-len(labels) // columns)
    figure = Figure(figsize=(4 * columns, 2.8 * rows))
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, label in zip(panels, labels, strict=False):
        for system, style in (("model", "o-"), ("baseline", "--")):
            points = [
                (r["step"], r["headline"][f"{label}/{system}"])
                for r in records
                if f"{label}/{system}" in r["headline"]
            ]
            if points:
                axes.plot(*zip(*points, strict=True), style, label=system)
        axes.set_title(label, fontsize=9)
        axes.set_xlabel("step", fontsize=8)
        axes.legend(fontsize=7)
    for axes in panels[len(labels) :]:
        axes.set_visible(False)
    figure.tight_layout()
    write_png(Path(plot), figure)
    return True


def run_table(plan: Plan, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per checkpoint found: folder, step, sha256 prefix, status and detail."""

    def row(folder: str, step: Any, sha: str | None, status: str, detail: str = "") -> dict:
        return {
            "checkpoint": folder,
            "step": "" if step is None else step,
            "sha256": (sha or "")[:12],
            "status": status,
            "detail": detail,
        }

    rows = [row(c.folder, c.step, c.sha256, "broken", c.problem) for c in plan.broken]
    rows += [row(c.folder, c.step, c.sha256, "already evaluated") for c in plan.done]
    rows += [row(c.folder, c.step, c.sha256, "duplicate weights") for c in plan.duplicates]
    for result in results:
        detail = result.get("error") or _brief(result.get("headline", {}))
        rows.append(
            row(result["folder"], result["step"], result["sha256"], result["status"], detail)
        )
    return sorted(rows, key=lambda r: (r["step"] == "", r["step"] or 0, r["checkpoint"]))


def _brief(headline: dict[str, float]) -> str:
    model = {k[: -len("/model")]: v for k, v in headline.items() if k.endswith("/model")}
    return ", ".join(f"{k}={v:.3f}" for k, v in sorted(model.items())[:4])


def run_markdown(table: list[dict[str, Any]]) -> str:
    """A markdown summary of one run: counts by status, then the table."""
    counts: dict[str, int] = {}
    for row in table:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    lines = ["# Re-evaluation", ""]
    lines += [f"- {status}: {n}" for status, n in sorted(counts.items())] or ["- no checkpoint"]
    if table:
        lines += ["", "| checkpoint | step | sha256 | status | detail |", "|---|---|---|---|---|"]
        lines += [
            f"| {r['checkpoint']} | {r['step']} | {r['sha256']} | {r['status']} | {r['detail']} |"
            for r in table
        ]
    return "\n".join(lines) + "\n"

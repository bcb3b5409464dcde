"""Loss curves: per-step DVCLive TSVs, a PNG of them (DVC's HTML plots need a CDN), a summary.

The histories are written by DVCLive's metric writer (`dvclive.plots.Metric`, what
`Live.log_metric` calls) in `Live`'s layout, `<live>/plots/metrics/<name>.tsv`. `Live` itself
is not used: it probes the repository on construction and fails in a git repository without
commits (scmrepo's SCMError escapes its DvcException guard), and in a git repository without
DVC it runs `dvc init`. The stage declares the TSVs as plots and writes its own metrics file.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dicepipe.storage import atomic_path

LOSS = "loss"
TASK_LOSS = "task_loss"  # task_loss/<task>


def metrics_dir(live_dir: Path) -> Path:
    """Where DVCLive writes the TSV history of each metric."""
    return live_dir / "plots" / "metrics"


class CurveLogger:
    """DVCLive histories of the main process; a run resumed at step k keeps rows <= k."""

    def __init__(self, live_dir: Path, resume_step: int) -> None:
        folder = metrics_dir(live_dir)
        if resume_step:
            truncate(folder, resume_step)
        else:
            shutil.rmtree(folder, ignore_errors=True)
        self.plots_dir = folder.parent
        self.metrics: dict[str, Any] = {}

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Append one row per metric at `step`."""
        from dvclive.plots import Metric

        for name, value in values.items():
            metric = self.metrics.setdefault(name, Metric(name, str(self.plots_dir)))
            metric.step = step
            metric.dump(float(value))


def truncate(folder: Path, step: int) -> None:
    """Drop the rows after `step` from every TSV below `folder` (they belong to a run that
    was killed after its last checkpoint; the resumed run writes them again)."""
    for path in folder.rglob("*.tsv"):
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows:
            continue
        kept = [row for row in rows if int(row["step"]) <= step]
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(
                handle, list(rows[0]), delimiter="\t", lineterminator=os.linesep
            )
            writer.writeheader()
            writer.writerows(kept)


def read_curve(path: Path) -> tuple[list[int], list[float]]:
    """(steps, values) of one DVCLive TSV."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    name = path.stem
    return [int(r["step"]) for r in rows], [float(r[name]) for r in rows]


def read_curves(live_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """Every logged history, by metric name (`loss`, `task_loss/depth`, ...)."""
    folder = metrics_dir(live_dir)
    return {
        path.relative_to(folder).with_suffix("").as_posix(): read_curve(path)
        for path in sorted(folder.rglob("*.tsv"))
    }


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (shorter at the start)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_losses(live_dir: Path, png: Path) -> Path:
    """Overall loss (raw and smoothed) beside the smoothed loss of each task, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    curves = read_curves(live_dir)
    steps, loss = curves.get(LOSS, ([], []))
    window = max(1, len(loss) // 20)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    left.plot(steps, loss, color="0.75", linewidth=0.8, label="per step")
    left.plot(steps, smooth(loss, window), color="C0", label=f"mean of {window}")
    left.set(title="training loss", xlabel="step", ylabel="flow-matching loss", yscale="log")
    left.legend()
    for index, (name, (x, y)) in enumerate(
        (n, c) for n, c in curves.items() if n.startswith(f"{TASK_LOSS}/")
    ):
        task_window = max(1, len(y) // 20)
        right.plot(x, smooth(y, task_window), color=f"C{index}", label=name.split("/", 1)[1])
    right.set(title="loss by task (smoothed)", xlabel="step")
    right.legend(fontsize="small")
    figure.tight_layout()
    with atomic_path(png) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return png


def summarise(live_dir: Path, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The run summary: first and final loss (final: mean of the last 10 logged), by task too."""
    curves = read_curves(live_dir)
    summary: dict[str, Any] = dict(extra)
    _, loss = curves.get(LOSS, ([], []))
    if loss:
        summary["first_loss"] = loss[0]
        summary["final_loss"] = sum(loss[-10:]) / len(loss[-10:])
    summary["final_task_loss"] = {
        name.split("/", 1)[1]: sum(y[-10:]) / len(y[-10:])
        for name, (_, y) in curves.items()
        if name.startswith(f"{TASK_LOSS}/") and y
    }
    return summary

"""DVCLive histories: truncation on resume, smoothing, the summary and the PNG."""

from __future__ import annotations

import json

import pytest

from dicepipe.train.curves import (
    CurveLogger,
    metrics_dir,
    plot_losses,
    read_curves,
    smooth,
    summarise,
)


def _log(live, steps, resume_step: int = 0, offset: float = 0.0) -> None:
    logger = CurveLogger(live, resume_step)
    for step in steps:
        logger.log(step, {"loss": step + offset, "task_loss/depth": 2.0 * step})


def test_a_resumed_logger_drops_the_rows_after_the_checkpoint(tmp_path):
    live = tmp_path / "live"
    _log(live, range(1, 6))  # killed after step 5; the last checkpoint was step 3
    _log(live, range(4, 7), resume_step=3, offset=0.5)
    steps, values = read_curves(live)["loss"]
    assert steps == [1, 2, 3, 4, 5, 6] and values == [1, 2, 3, 4.5, 5.5, 6.5]
    assert read_curves(live)["task_loss/depth"][0] == steps
    assert not (live / "metrics.json").exists() and not (live / "dvc.yaml").exists()


def test_a_fresh_logger_starts_new_histories(tmp_path):
    live = tmp_path / "live"
    _log(live, range(1, 4))
    _log(live, range(1, 3))
    assert read_curves(live)["loss"][0] == [1, 2]
    assert (metrics_dir(live) / "loss.tsv").read_text().splitlines()[0] == "step\tloss"


def test_smooth_is_a_trailing_mean():
    assert smooth([1.0, 3.0, 5.0, 7.0], window=2) == [1.0, 2.0, 4.0, 6.0]


def test_summary_and_png(tmp_path):
    live = tmp_path / "live"
    _log(live, range(1, 21))
    summary = summarise(live, {"steps": 20})
    assert summary["first_loss"] == 1.0 and summary["final_loss"] == pytest.approx(15.5)
    assert summary["final_task_loss"] == {"depth": pytest.approx(31.0)} and summary["steps"] == 20
    json.dumps(summary)
    png = plot_losses(live, tmp_path / "loss.png")
    assert png.read_bytes()[:4] == b"\x89PNG"

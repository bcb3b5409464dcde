"""The model card written into a saved model folder."""

from __future__ import annotations

import json

from dicepipe.model.card import render_model_card, write_model_card
from dicepipe.params.train import TrainParams

INFO = {
    "resolution": 64,
    "vae": None,
    "trained_on": {"shards": "data/shards", "manifest_sha256": "ab" * 32},
}
METRICS = {"steps": 400, "final_loss": 0.4123456789, "train_time_s": 12.5, "world_size": 1}


def test_the_card_names_the_data_the_params_and_the_final_metrics():
    params = {"steps": 400, "lr": 0.002, "pretrained": None}
    text = render_model_card(params, INFO, METRICS)
    assert text.startswith("---\nlibrary_name: diffusers\n")
    assert f"- manifest.json sha256: `{'ab' * 32}`" in text
    assert "- shards: `data/shards`" in text and "- resolution: 64 px, pixel space" in text
    assert "- steps: 400\n- final_loss: 0.412346\n- world_size: 1\n" in text
    blocks = text.split("```json\n")[1:]
    assert json.loads(blocks[0].split("```")[0]) == {
        k: v for k, v in METRICS.items() if k != "train_time_s"
    }
    assert json.loads(blocks[1].split("```")[0]) == params
    assert render_model_card(params, INFO, METRICS) == text  # pure: same inputs, same text


def test_the_runs_timings_stay_out_of_the_card():
    """The same training at another speed, or resumed, writes the same model folder."""
    params = {"steps": 400}
    slower = {**METRICS, "train_time_s": 99.0, "samples_per_s": 1.5, "resumed_from": 300}
    assert render_model_card(params, INFO, slower) == render_model_card(params, INFO, METRICS)
    assert "train_time_s" not in render_model_card(params, INFO, slower)


def test_write_model_card_takes_the_train_section_dataclass(tmp_path):
    path = write_model_card(tmp_path, TrainParams(steps=7), {"resolution": 16}, {"steps": 7})
    text = path.read_text()
    assert path.name == "README.md" and '"steps": 7' in text and '"preset": "tiny"' in text
    assert "manifest.json sha256: `unknown (no manifest)`" in text

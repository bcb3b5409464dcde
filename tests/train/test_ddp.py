"""Two CPU ranks under torchrun (gloo): disjoint samples, identical weights."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from dicepipe.model import DiceptionModel
from dicepipe.train.distributed import state_checksum
from dicepipe.train.loop import train

STAGE = Path(__file__).resolve().parents[2] / "stages" / "train.py"


def _trace(output: Path, rank: int) -> tuple[list[dict], str]:
    lines = [json.loads(line) for line in (output / "trace" / f"rank{rank}.jsonl").open()]
    return [r for r in lines if "keys" in r], next(r["checksum"] for r in lines if r.get("final"))


def test_two_ranks_read_disjoint_samples_and_end_with_the_same_weights(make_params, tmp_path):
    """Then one process resumes their checkpoint: another world size, with RNG files of ranks
    it does not have (each rank's noise is seeded by seed, rank and step, not by them)."""
    params, loader = make_params("ddp", steps=3, checkpoint_every=2, trace=True)
    path = tmp_path / "params.yaml"
    sections = {"train": dataclasses.asdict(params), "loader": dataclasses.asdict(loader)}
    path.write_text(yaml.safe_dump(sections))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(STAGE), "--params", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    output = Path(params.output)
    (batches0, checksum0), (batches1, checksum1) = _trace(output, 0), _trace(output, 1)
    assert len(batches0) == len(batches1) == 3
    keys0 = {k for b in batches0 for k in b["keys"]}
    keys1 = {k for b in batches1 for k in b["keys"]}
    assert keys0 and keys1 and not keys0 & keys1
    partitions = [{p for b in rank for p, _ in b["samples"]} for rank in (batches0, batches1)]
    assert partitions == [{0}, {1}]

    saved = DiceptionModel.from_pretrained(output / "model")
    assert checksum0 == checksum1 == state_checksum(saved)
    summary = json.loads(Path(params.metrics).read_text())
    assert summary["world_size"] == 2 and summary["global_batch"] == 8
    checkpoint = output / "checkpoints" / "checkpoint-2"
    assert {p.name for p in checkpoint.glob("loader-rank*.json")} == {
        "loader-rank0.json",
        "loader-rank1.json",
    }

    resumed = dataclasses.replace(params, steps=5, resume="latest", trace=False)
    again = train(resumed, loader)
    assert again["resumed_from"] == 3 and again["world_size"] == 1 and again["steps"] == 5

"""Checkpoints on a machine's own disk, mirrored to a shared URL (a real S3 server here), and a
resume on a machine whose disk holds none of them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dicepipe.model import DiceptionModel
from dicepipe.train.curves import read_curves
from dicepipe.train.distributed import state_checksum
from dicepipe.train.loop import train
from dicepipe.train.shared import latest_shared, shared_checkpoints
from tests.objectstore import s3_server


@pytest.fixture(scope="module")
def bucket():
    with s3_server() as store:
        yield store


def _losses(output: str) -> list[float]:
    return read_curves(Path(output) / "live")["loss"][1]


def test_a_new_machine_resumes_from_the_shared_checkpoints(make_params, bucket):
    url = f"{bucket.url}/runs/shared"
    changes = {"checkpoint_every": 2, "keep_checkpoints": 1}
    straight, loader = make_params("straight", steps=6, **changes)
    train(straight, loader)

    first, _ = make_params("first-machine", steps=4, checkpoint_url=url, **changes)
    train(first, loader)
    shared = shared_checkpoints(url)
    assert [step for step, _ in shared] == [4]  # the older one pruned on the store too
    assert json.loads((shared[0][1] / "trainer.json").read_text())["step"] == 4
    assert (shared[0][1] / "model" / "inference.json").exists()
    assert (shared[0][1] / "loader-rank0.json").exists()

    second, _ = make_params(
        "second-machine", steps=6, checkpoint_url=url, resume="latest", **changes
    )
    assert not Path(second.output).exists()  # its disk holds nothing of the first run
    summary = train(second, loader)
    assert summary["resumed_from"] == 4
    assert _losses(second.output)[-2:] == _losses(straight.output)[-2:]  # bit for bit
    a = DiceptionModel.from_pretrained(Path(straight.output) / "model")
    b = DiceptionModel.from_pretrained(Path(second.output) / "model")
    assert state_checksum(a) == state_checksum(b)
    assert [step for step, _ in shared_checkpoints(url)] == [6]


def test_starting_over_clears_the_shared_checkpoints(make_params, tmp_path):
    url = str(tmp_path / "shared-folder")  # a shared file system works as a URL does
    params, loader = make_params("a", steps=2, checkpoint_every=1, checkpoint_url=url)
    train(params, loader)
    assert [step for step, _ in shared_checkpoints(url)] == [1, 2]
    digest = json.loads((Path(url) / "checkpoint-2" / "trainer.json").read_text())["digest"]
    assert latest_shared(url, digest) == Path(url) / "checkpoint-2"
    assert latest_shared(url, "another run") is None
    shutil.rmtree(Path(url) / "checkpoint-2" / "state")
    (Path(url) / "checkpoint-2" / "trainer.json").unlink()  # as if cut off while uploading
    again, _ = make_params("b", steps=1, checkpoint_every=1, checkpoint_url=url)
    train(again, loader)
    assert [step for step, _ in shared_checkpoints(url)] == [1]
    assert sorted(p.name for p in Path(url).iterdir()) == ["checkpoint-1"]

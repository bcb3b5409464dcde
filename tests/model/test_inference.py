"""`dicepipe predict`: a saved checkpoint on real image files, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from dicepipe.cli import main
from dicepipe.imageio import decode_image
from dicepipe.model.inference import INFERENCE_FILE

from .bad_folders import BAD_FOLDERS, break_folder
from .conftest import make_model

PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt") / "model"
    model = make_model(tasks=["depth", "normal", "point_segmentation", "pose"])
    model.save_pretrained(str(folder))
    (folder / INFERENCE_FILE).write_text(json.dumps({"resolution": 16}))
    return folder


def _predict(checkpoint: Path, out: Path, *extra: str) -> int:
    args = ["predict", "--checkpoint", str(checkpoint), "--out", str(out), "--steps", "2"]
    return main([*args, *extra])


def test_depth_prediction_writes_rgb_decoded_outputs_and_preview(checkpoint, tmp_path):
    assert _predict(checkpoint, tmp_path, "--task", "depth", str(PHOTO)) == 0
    rgb = decode_image(PHOTO.read_bytes()).rgb
    prediction = decode_image((tmp_path / "grace_hopper.depth.png").read_bytes()).rgb
    assert prediction.shape == rgb.shape
    preview = decode_image((tmp_path / "grace_hopper.depth.preview.png").read_bytes()).rgb
    assert preview.shape == (rgb.shape[0], 2 * rgb.shape[1], 3)
    depth = np.load(tmp_path / "grace_hopper.depth.npy")
    assert depth.shape == rgb.shape[:2] and np.isfinite(depth).all()
    assert (tmp_path / "grace_hopper.depth.16bit.png").stat().st_size > 0
    assert json.loads((tmp_path / "predict.json").read_text())["resolution"] == 16


def test_the_same_seed_gives_the_same_prediction(checkpoint, tmp_path):
    for out in ("a", "b"):
        assert _predict(checkpoint, tmp_path / out, "--task", "normal", str(PHOTO)) == 0
    first = (tmp_path / "a" / "grace_hopper.normal.png").read_bytes()
    assert first == (tmp_path / "b" / "grace_hopper.normal.png").read_bytes()


def test_point_segmentation_with_points_and_pose(checkpoint, tmp_path):
    args = ["--task", "point_segmentation", str(PHOTO), "--points", "10,20", "100,50"]
    code = _predict(checkpoint, tmp_path, *args)
    assert code == 0
    mask = decode_image((tmp_path / "grace_hopper.point_segmentation.mask.png").read_bytes())
    assert mask.rgb.shape[:2] == decode_image(PHOTO.read_bytes()).rgb.shape[:2]
    assert _predict(checkpoint, tmp_path, "--task", "pose", "--one-step", str(PHOTO)) == 0
    assert "keypoints" in json.loads((tmp_path / "grace_hopper.pose.keypoints.json").read_text())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "depth", "missing.jpg"], "no such file"),
        (["--task", "depth", "__TEXT__"], "not a readable image"),
        (["--task", "dept", str(PHOTO)], "unknown task 'dept'"),
        (["--task", "semantic_segmentation", str(PHOTO)], "this checkpoint knows"),
        (["--task", "point_segmentation", str(PHOTO), "--points", "99999,1"], "outside"),
        (["--task", "point_segmentation", str(PHOTO), "--points", "1;2"], "not x,y"),
    ],
)
def test_bad_requests_exit_non_zero_with_a_clear_message(
    checkpoint, tmp_path, capsys, extra, message
):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    extra = [str(text) if e == "__TEXT__" else e for e in extra]
    assert _predict(checkpoint, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_a_folder_without_a_model_is_refused(tmp_path, capsys):
    assert _predict(tmp_path, tmp_path / "out", "--task", "depth", str(PHOTO)) == 2
    assert capsys.readouterr().err == f"error: {tmp_path} is not a model folder (no config.json)\n"


@pytest.mark.parametrize("kind", sorted(BAD_FOLDERS))
def test_every_kind_of_broken_model_folder_exits_2_naming_file_and_fault(
    checkpoint, tmp_path, capsys, kind
):
    named, message = break_folder(checkpoint, tmp_path / "model", kind)
    assert _predict(tmp_path / "model", tmp_path / "out", "--task", "depth", str(PHOTO)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--device", "bogus"], "argument --device: 'bogus' is not one of auto, cpu, cuda, cuda:N"),
        (["--resolution", "-16"], "argument --resolution: must be >= 1, got -16"),
        (["--resolution", "0"], "argument --resolution: must be >= 1, got 0"),
        (["--steps", "0"], "argument --steps: must be >= 1, got 0"),
        (["--steps", "two"], "argument --steps: 'two' is not an integer"),
    ],
)
def test_bad_options_are_refused_by_the_parser(checkpoint, tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as exit_:
        _predict(checkpoint, tmp_path, "--task", "depth", str(PHOTO), *option)
    assert exit_.value.code == 2
    assert f"dicepipe predict: error: {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--resolution", "15"], "--resolution: resolution 15 is not a multiple of 2"),
        (["--resolution", "64"], "--resolution: resolution 64 gives 32 patches a side"),
    ],
)
def test_a_resolution_off_the_models_grid_is_refused(checkpoint, tmp_path, capsys, option, message):
    assert _predict(checkpoint, tmp_path, "--task", "depth", str(PHOTO), *option) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")


def test_cuda_without_cuda_is_a_clear_error(checkpoint, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert _predict(checkpoint, tmp_path, "--task", "depth", str(PHOTO), "--device", "cuda") == 2
    assert "error: device 'cuda': " in capsys.readouterr().err


def test_predict_resizes_its_input_exactly_as_the_training_loader():
    import torch

    from dicepipe.imageio import encode_png
    from dicepipe.model.inference import to_input
    from dicepipe.train.loader import decode_rgb, to_tensor

    rng = np.random.default_rng(0)
    for height, width in ((20, 30), (90, 120)):  # enlarged (bilinear) and shrunk (area)
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        trained = to_tensor(decode_rgb(encode_png(rgb), 48, nearest=False))
        assert torch.equal(to_input(rgb, 48)[0], trained)


@pytest.fixture(scope="module")
def one_step_checkpoint(tmp_path_factory, checkpoint) -> Path:
    """The checkpoint, as trained by params.yaml: one-step mode, no prompt dropout."""
    import shutil

    folder = tmp_path_factory.mktemp("one-step") / "model"
    shutil.copytree(checkpoint, folder)
    info = {"resolution": 16, "flow": {"deterministic": True, "prompt_dropout": 0.0}}
    (folder / INFERENCE_FILE).write_text(json.dumps(info))
    return folder


def test_sampling_follows_how_the_checkpoint_was_trained(one_step_checkpoint, tmp_path, capsys):
    assert _predict(one_step_checkpoint, tmp_path, "--task", "depth", str(PHOTO)) == 0
    record = json.loads((tmp_path / "predict.json").read_text())
    assert (record["one_step"], record["steps"], record["guidance"]) == (True, 1, 1.0)
    assert "warning" not in capsys.readouterr().err


def test_sampling_against_the_training_is_kept_with_a_warning(
    one_step_checkpoint, tmp_path, capsys
):
    args = ("--task", "depth", "--no-one-step", "--guidance", "2", str(PHOTO))
    assert _predict(one_step_checkpoint, tmp_path, *args) == 0
    record = json.loads((tmp_path / "predict.json").read_text())
    assert (record["one_step"], record["steps"], record["guidance"]) == (False, 2, 2.0)
    err = capsys.readouterr().err
    assert "trained in the one-step mode" in err and "guidance 2 mixes in" in err


def test_a_checkpoint_without_a_training_record_samples_as_diception(checkpoint, tmp_path):
    assert _predict(checkpoint, tmp_path, "--task", "depth", str(PHOTO)) == 0
    record = json.loads((tmp_path / "predict.json").read_text())
    assert (record["one_step"], record["guidance"]) == (False, 2.0)

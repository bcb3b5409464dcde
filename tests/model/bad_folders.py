"""The kinds of broken model folder every model-side command must refuse with a message naming
the file and the fault (shared by the predict, evaluate and folder tests)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

WEIGHTS = "diffusion_pytorch_model.safetensors"


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps(change(data)))

    return edit


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text)


def _remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _file_instead(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.write_text("not a folder")


def _other_layers(config: dict) -> dict:
    config["transformer_config"]["num_layers"] += 1
    return config


def _other_width(config: dict) -> dict:
    config["transformer_config"]["joint_attention_dim"] *= 2
    return config


# kind -> (how to break a good folder, what the message must say besides the file's name)
BAD_FOLDERS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "missing folder": (shutil.rmtree, "", "does not exist"),
    "file, not folder": (_file_instead, "", "is a file, not a model folder"),
    "no config.json": (_remove("config.json"), "", "no config.json"),
    "garbage config.json": (_write("config.json", "{oops"), "config.json", "not valid JSON"),
    "list config.json": (
        _write("config.json", "[1, 2, 3]"),
        "config.json",
        "expected a JSON object, got list",
    ),
    "empty config.json": (_write("config.json", "{}"), "config.json", "_class_name is None"),
    "config without transformer": (
        _edit_json("config.json", lambda c: {**c, "transformer_config": 7}),
        "config.json",
        "transformer_config must be an object",
    ),
    "truncated weights": (lambda f: _truncate(f / WEIGHTS), WEIGHTS, "truncated"),
    "zero-byte weights": (_write(WEIGHTS, ""), WEIGHTS, "0 bytes"),
    "missing weights": (_remove(WEIGHTS), WEIGHTS, "missing (the weights)"),
    "config with more layers than the weights": (
        _edit_json("config.json", _other_layers),
        "",
        "do not fit config.json: 28 tensors missing",
    ),
    "config of another width": (
        _edit_json("config.json", _other_width),
        "",
        "tensors of another shape (first: points.mlp.0.bias is [32], config.json expects [64])",
    ),
    "missing inference.json": (
        _remove("inference.json"),
        "inference.json",
        "missing (the training resolution)",
    ),
    "garbage inference.json": (
        _write("inference.json", "resolution=16"),
        "inference.json",
        "not valid JSON",
    ),
    "list inference.json": (
        _write("inference.json", "[16]"),
        "inference.json",
        "expected a JSON object",
    ),
    "mistyped inference.json": (
        _write("inference.json", '{"resolution": "16"}'),
        "inference.json",
        "resolution must be a positive integer, got '16'",
    ),
    "resolution off the patch grid": (
        _write("inference.json", '{"resolution": 17}'),
        "inference.json",
        "resolution 17 is not a multiple of 2",
    ),
    "vae folder missing": (
        _write("inference.json", '{"resolution": 16, "vae": "vae"}'),
        "inference.json",
        "does not exist",
    ),
}


def break_folder(good: Path, target: Path, kind: str) -> tuple[str, str]:
    """Copy `good` to `target` and break it the way `kind` says: (file named, fault message)."""
    shutil.copytree(good, target)
    breaker, name, message = BAD_FOLDERS[kind]
    breaker(target)
    return str(target / name) if name else str(target), message

"""A model folder, checked before anything loads: the one reader of what training wrote.

A model folder is self-contained (it can be moved or copied anywhere):

- `config.json` + `diffusion_pytorch_model.safetensors`: the DiceptionModel (`save_pretrained`),
  its task names in the config and its task table in the weights;
- `inference.json`: `{"resolution": <training side in pixels>, "vae": "vae" | null, "flow":
  {"deterministic", "prompt_dropout"}, ...}`, the VAE named relative to the folder; `flow`,
  how it was trained, gives its sampling defaults (`trained_sampling`);
- `vae/`: the SD3 VAE of a latent model (a copy of the pretrained one);
- `prompts.safetensors` (latent models trained with text encoders): every registry task's
  prompt encoded by them, so a new task's row starts from its own prompt;
- `README.md`: the model card.

`read_model_folder` validates every file without loading a weight and raises
`ModelFolderError` naming the file and the fault; `load_model_folder` then loads the model,
its space and the training resolution. Evaluation, prediction, finetuning, merging and the
scheduled re-evaluation all go through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicepipe.config import ConfigError
from dicepipe.storage import safetensors_shapes as read_safetensors_shapes
from dicepipe.weights import resolve_device

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX = "diffusion_pytorch_model.safetensors.index.json"
INFERENCE_FILE = "inference.json"
VAE_DIR = "vae"
PROMPTS_FILE = "prompts.safetensors"
CARD_FILE = "README.md"


@dataclass(frozen=True)
class TrainedSampling:
    """How a model's training says to sample it."""

    one_step: bool  # trained in the one-step deterministic mode (train.flow.deterministic)
    guidance: float  # 1: none; 2 (DICEPTION's) only where the unconditional branch was trained
    guidance_trained: bool  # prompt dropout > 0: the unconditional branch exists


def trained_sampling(info: dict[str, Any]) -> TrainedSampling | None:
    """The sampling an `inference.json` implies: one step for a one-step model, guidance 1
    unless flow matching trained the unconditional branch; None when it has no `flow` record
    (folders written before it, or by hand)."""
    flow = info.get("flow")
    if not isinstance(flow, dict):
        return None
    one_step = bool(flow.get("deterministic", False))
    guidance_trained = float(flow.get("prompt_dropout", 0.0)) > 0.0
    guidance = 2.0 if guidance_trained and not one_step else 1.0
    return TrainedSampling(one_step, guidance, guidance_trained)


def sampling_mismatches(info: dict[str, Any], one_step: bool, guidance: float) -> list[str]:
    """What is wrong with sampling a model folder (its `inference.json`) this way: each line
    names the setting and what its training did; empty when it fits or is unknown."""
    trained = trained_sampling(info)
    if trained is None:
        return []
    found = []
    if one_step and not trained.one_step:
        found.append(
            "one-step sampling of a model trained for many-step flow matching "
            "(train.flow.deterministic false): one step gives a blurred mean; sample with steps"
        )
    if not one_step and trained.one_step:
        found.append(
            "many-step sampling of a model trained in the one-step mode "
            "(train.flow.deterministic true): it only learnt t = 1; sample in one step"
        )
    if guidance != 1.0 and not trained.guidance_trained:
        found.append(
            f"guidance {guidance:g} mixes in an unconditional prediction that this model never "
            "learnt (train.flow.prompt_dropout 0); use guidance 1"
        )
    return found


class ModelFolderError(ConfigError):
    """A model folder (or a file in it, or a setting for it) that cannot be used; the message
    names the file and the fault."""


@dataclass(frozen=True)
class ModelFolder:
    """A checked model folder: its parsed config, inference settings and VAE folder."""

    path: Path
    config: dict[str, Any]
    info: dict[str, Any]
    resolution: int  # the training resolution, the one value written at train time
    vae: Path | None  # the VAE folder of a latent model

    @property
    def cell(self) -> int:
        """Pixels per transformer patch side: patch size x the VAE's downsampling."""
        return resolution_cell(self.config, self.vae)

    @property
    def prompts(self) -> Path | None:
        """The encoded task prompts saved beside the model, if any."""
        path = self.path / PROMPTS_FILE
        return path if path.is_file() else None


@dataclass
class LoadedModelFolder:
    """A model folder ready to sample: model (eval mode, on its device), space, resolution."""

    model: Any
    space: Any
    resolution: int
    folder: Path
    checked: ModelFolder

    @property
    def tasks(self) -> list[str]:
        """The tasks the model knows."""
        return list(self.model.tasks)


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON file that must hold an object; ModelFolderError naming `path` otherwise."""
    if not path.is_file():
        raise ModelFolderError(f"{path}: missing ({what})")
    try:
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelFolderError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} from a safetensors header, after checking that the file is whole
    (its tensor data ends exactly at the end of the file); ModelFolderError otherwise."""
    if not path.is_file():
        raise ModelFolderError(f"{path}: missing (the weights)")
    try:
        return read_safetensors_shapes(path)
    except ValueError as error:
        raise ModelFolderError(f"{path}: {error}") from None


def weights_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in the model weights (one file, or the shards of an index)."""
    if (folder / WEIGHTS_INDEX).is_file() and not (folder / WEIGHTS_FILE).exists():
        index = read_json_object(folder / WEIGHTS_INDEX, "the weights index")
        files = sorted(set((index.get("weight_map") or {}).values()))
        if not files:
            raise ModelFolderError(f"{folder / WEIGHTS_INDEX}: lists no weight files")
        shapes: dict[str, tuple[int, ...]] = {}
        for name in files:
            shapes.update(safetensors_shapes(folder / str(name)))
        return shapes
    return safetensors_shapes(folder / WEIGHTS_FILE)


def expected_shapes(config: dict[str, Any], path: Path) -> dict[str, tuple[int, ...]]:
    """{parameter: shape} of the DiceptionModel `config` describes, built on the meta device."""
    import torch

    from .diception import DiceptionModel

    try:
        with torch.device("meta"):
            model = DiceptionModel.from_config(config)
    except Exception as error:  # noqa: BLE001 - any constructor failure means a bad config
        raise ModelFolderError(
            f"{path}: does not describe a DiceptionModel ({type(error).__name__}: {error})"
        ) from None
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def check_weights_fit(config: dict[str, Any], folder: Path) -> None:
    """ModelFolderError when the weights lack, add or reshape a tensor of the config's model."""
    expected = expected_shapes(config, folder / CONFIG_FILE)
    found = weights_shapes(folder)
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(n for n in set(expected) & set(found) if expected[n] != found[n])
    faults = []
    if missing:
        faults.append(f"{len(missing)} tensors missing (first: {missing[0]})")
    if extra:
        faults.append(f"{len(extra)} unexpected tensors (first: {extra[0]})")
    if wrong:
        name = wrong[0]
        faults.append(
            f"{len(wrong)} tensors of another shape (first: {name} is "
            f"{list(found[name])}, config.json expects {list(expected[name])})"
        )
    if faults:
        weights = WEIGHTS_FILE if (folder / WEIGHTS_FILE).exists() else WEIGHTS_INDEX
        raise ModelFolderError(
            f"{folder}: the weights ({weights}) do not fit {CONFIG_FILE}: {'; '.join(faults)}"
        )


def read_config(folder: Path) -> dict[str, Any]:
    """config.json, checked to be a DiceptionModel config with a transformer config."""
    path = folder / CONFIG_FILE
    config = read_json_object(path, "the model config")
    name = config.get("_class_name")
    if name != "DiceptionModel":
        raise ModelFolderError(f"{path}: _class_name is {name!r}, expected 'DiceptionModel'")
    transformer = config.get("transformer_config")
    if not isinstance(transformer, dict):
        raise ModelFolderError(f"{path}: transformer_config must be an object")
    for key in ("patch_size", "in_channels", "pos_embed_max_size"):
        value = transformer.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelFolderError(
                f"{path}: transformer_config.{key} must be a positive integer, got {value!r}"
            )
    return config


def resolution_cell(config: dict[str, Any], vae: Path | None) -> int:
    """Pixels per patch side: the transformer's patch size x the VAE's downsampling."""
    patch = int(config["transformer_config"]["patch_size"])
    if vae is None:
        return patch
    vae_config = json.loads((vae / CONFIG_FILE).read_text())
    return patch * 2 ** (len(vae_config.get("block_out_channels", [0])) - 1)


def check_resolution(resolution: Any, config: dict[str, Any], vae: Path | None, where: str) -> int:
    """`resolution` as an int when it is a positive multiple of the patch cell that fits the
    transformer's position embedding; ModelFolderError naming `where` otherwise."""
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
        raise ModelFolderError(
            f"{where}: resolution must be a positive integer, got {resolution!r}"
        )
    cell = resolution_cell(config, vae)
    if resolution % cell:
        raise ModelFolderError(
            f"{where}: resolution {resolution} is not a multiple of {cell} (patch x VAE)"
        )
    limit = int(config["transformer_config"]["pos_embed_max_size"])
    if resolution // cell > limit:
        raise ModelFolderError(
            f"{where}: resolution {resolution} gives {resolution // cell} patches a side; "
            f"the transformer's pos_embed_max_size is {limit}"
        )
    return resolution


def read_vae(folder: Path, info: dict[str, Any], config: dict[str, Any]) -> Path | None:
    """The VAE folder inference.json names (relative to the model folder), checked; None for
    a pixel-space model."""
    path = folder / INFERENCE_FILE
    name = info.get("vae")
    channels = int(config["transformer_config"]["in_channels"])
    if name is None:
        if channels != 3:
            raise ModelFolderError(f"{path}: a {channels}-channel (latent) model needs a vae")
        return None
    if not isinstance(name, str) or not name:
        raise ModelFolderError(f"{path}: vae must be a folder name or null, got {name!r}")
    vae = folder / name
    if not vae.is_dir():
        raise ModelFolderError(f"{path}: vae folder {vae} does not exist")
    vae_config = read_json_object(vae / CONFIG_FILE, "the VAE config")
    if vae_config.get("latent_channels") != channels:
        raise ModelFolderError(
            f"{vae / CONFIG_FILE}: latent_channels {vae_config.get('latent_channels')!r}, "
            f"the model expects {channels}"
        )
    safetensors_shapes(vae / WEIGHTS_FILE)
    return vae


def read_model_folder(path: str | Path) -> ModelFolder:
    """Check a model folder file by file without loading weights (see the module docstring)."""
    folder = Path(path)
    if not folder.exists():
        raise ModelFolderError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is a file, not a model folder")
    if not (folder / CONFIG_FILE).exists():
        raise ModelFolderError(f"{folder} is not a model folder (no {CONFIG_FILE})")
    config = read_config(folder)
    check_weights_fit(config, folder)
    info = read_json_object(folder / INFERENCE_FILE, "the training resolution")
    vae = read_vae(folder, info, config)
    where = str(folder / INFERENCE_FILE)
    resolution = check_resolution(info.get("resolution"), config, vae, where)
    return ModelFolder(folder, config, info, resolution, vae)


def load_model_folder(
    path: str | Path,
    device: str = "auto",
    resolution: int | None = None,
    resolution_from: str = "--resolution",
) -> LoadedModelFolder:
    """Check, then load, a model folder: the model in eval mode on `device`, its space, and the
    resolution to sample at (`resolution` when given, checked and named in errors as
    `resolution_from`, else the training one)."""

    checked = read_model_folder(path)
    if resolution is not None:
        resolution = check_resolution(resolution, checked.config, checked.vae, resolution_from)
    try:
        target = resolve_device(device)
    except (ValueError, RuntimeError) as error:
        raise ModelFolderError(f"device {device!r}: {error}") from None
    model, space = _load(checked)
    model.to(target).eval()
    if hasattr(space, "vae"):
        space.vae.to(target)
    return LoadedModelFolder(model, space, resolution or checked.resolution, checked.path, checked)


def _load(checked: ModelFolder) -> tuple[Any, Any]:
    """The model and its space; a checked folder that still fails to load names its files."""
    from .diception import DiceptionModel
    from .space import make_space

    try:
        model = DiceptionModel.from_pretrained(str(checked.path))
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise ModelFolderError(f"{checked.path}: the model does not load ({error})") from None
    try:
        space = make_space(model.config, checked.vae)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise ModelFolderError(f"{checked.vae}: the VAE does not load ({error})") from None
    return model, space

"""Run a trained checkpoint on image files: the RGB prediction, its decoded output, a preview.

A checkpoint is a model folder (`dicepipe.model.folder`), optionally with a LoRA adapter
(`dicepipe.model.lora`) that may bring a new task.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dicepipe.errors import UserError
from dicepipe.imageio import ImageDecodeError, decode_image, encode_png, resize_square
from dicepipe.storage import atomic_write, write_json
from dicepipe.targets.decode_masks import decode_instance_masks
from dicepipe.targets.decode_pose import disc_centres
from dicepipe.targets.depth import decode_depth
from dicepipe.targets.normals import decode_normals
from dicepipe.targets.segmentation import decode_point_mask

from .diception import DiceptionModel
from .folder import (
    INFERENCE_FILE,
    LoadedModelFolder,
    load_model_folder,
    sampling_mismatches,
    trained_sampling,
)
from .points import MAX_POINTS
from .sampler import predict

__all__ = ["INFERENCE_FILE", "PredictError", "PredictOptions", "load_checkpoint", "run_predict"]


class PredictError(UserError, ValueError):
    """A bad request: missing checkpoint or file, not an image, unknown task, bad points."""


@dataclass(frozen=True)
class PredictOptions:
    """How to sample: steps, guidance, one-step mode, resolution, seed and device. Guidance
    and the one-step mode left None follow the checkpoint (`with_trained_sampling`)."""

    task: str
    steps: int = 28
    guidance: float | None = None
    shift: float = 3.0
    one_step: bool | None = None
    resolution: int | None = None  # None: the checkpoint's training resolution
    seed: int = 0
    device: str = "auto"
    lora: str | None = None  # a LoRA adapter folder (dicepipe.model.lora) to apply


def load_checkpoint(
    folder: str | Path,
    device: str = "auto",
    resolution: int | None = None,
    lora: str | Path | None = None,
) -> LoadedModelFolder:
    """A checked model folder loaded on the device, with a LoRA adapter (and its task) when
    given; ModelFolderError naming the file when anything is wrong."""
    from .lora import load_lora

    loaded = load_model_folder(folder, device, resolution)
    if lora is not None:
        load_lora(loaded.model, lora)
        loaded.model.eval()
    return loaded


def with_trained_sampling(options: PredictOptions, info: dict[str, Any]) -> PredictOptions:
    """`options` with the guidance and one-step mode left None taken from how the model was
    trained (its `inference.json`; DICEPTION's 28 steps at guidance 2 when it does not say).
    A setting given that does not fit the training is kept, with a warning on stderr."""
    trained = trained_sampling(info)
    one_step = options.one_step
    if one_step is None:
        one_step = trained.one_step if trained else False
    guidance = options.guidance
    if guidance is None:
        guidance = trained.guidance if trained else 2.0
    for line in sampling_mismatches(info, one_step, guidance):
        print(f"warning: {line}", file=sys.stderr)
    return replace(options, one_step=one_step, guidance=guidance)


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, EXIF-upright; PredictError when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{path}: no such file")
    try:
        return decode_image(path.read_bytes()).rgb
    except ImageDecodeError as error:
        raise PredictError(f"{path}: not a readable image ({error})") from None


def pixel_points(points: list[tuple[float, float]], width: int, height: int) -> np.ndarray:
    """Pixel (x, y) prompt points -> normalised (k, 2) pixel centres; PredictError when a point
    lies outside the image or there are more than five."""
    if len(points) > MAX_POINTS:
        raise PredictError(f"at most {MAX_POINTS} points, got {len(points)}")
    for x, y in points:
        if not (0 <= x < width and 0 <= y < height):
            raise PredictError(f"point ({x}, {y}) lies outside the {width}x{height} image")
    return np.asarray([((x + 0.5) / width, (y + 0.5) / height) for x, y in points], np.float32)


def to_input(rgb: np.ndarray, resolution: int) -> torch.Tensor:
    """(1, 3, r, r) float in [-1, 1], resized as the training loader resizes."""
    resized = np.ascontiguousarray(resize_square(rgb, resolution))
    return torch.from_numpy(resized).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def to_rgb(prediction: torch.Tensor, width: int, height: int) -> np.ndarray:
    """A (3, r, r) prediction in [-1, 1] -> (H, W, 3) uint8 at the input's size."""
    import cv2

    rgb = ((prediction.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=cv2.INTER_LINEAR)


def predict_image(
    model: DiceptionModel,
    space: Any,
    rgb: np.ndarray,
    options: PredictOptions,
    points: np.ndarray | None = None,
    resolution: int = 64,
) -> np.ndarray:
    """The model's RGB prediction (H, W, 3) uint8 for one image and task (`options` with its
    sampling resolved: `with_trained_sampling`)."""
    if options.guidance is None or options.one_step is None:
        raise ValueError("resolve the guidance and one-step mode first (with_trained_sampling)")
    if options.task not in model.tasks:
        known = ", ".join(model.tasks)
        hint = "" if options.lora else " (a finetuned task comes with its adapter: --lora DIR)"
        raise PredictError(f"unknown task {options.task!r}; this checkpoint knows: {known}{hint}")
    padded = torch.zeros(1, MAX_POINTS, 2)
    mask = torch.zeros(1, MAX_POINTS, dtype=torch.bool)
    if points is not None and len(points):
        padded[0, : len(points)] = torch.from_numpy(points)
        mask[0, : len(points)] = True
    generator = torch.Generator(model.device).manual_seed(options.seed)
    output = predict(
        model,
        space,
        to_input(rgb, resolution),
        torch.tensor([model.task_id(options.task)]),
        padded,
        mask,
        steps=options.steps,
        guidance=options.guidance,
        shift=options.shift,
        one_step=options.one_step,
        generator=generator,
    )
    return to_rgb(output[0].cpu(), rgb.shape[1], rgb.shape[0])


def decoded_outputs(task: str, prediction: np.ndarray) -> dict[str, bytes]:
    """The decoded output files of a task's RGB prediction: suffix -> bytes."""
    import io

    def npy(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue()

    if task == "depth":
        depth = decode_depth(prediction)  # relative depth in [1, 10] (scale and shift unknown)
        scaled = (depth - depth.min()) / max(float(np.ptp(depth)), 1e-6) * 65535
        return {"npy": npy(depth), "16bit.png": _png16(scaled.astype(np.uint16))}
    if task == "normal":
        return {"npy": npy(decode_normals(prediction))}
    if task == "point_segmentation":
        return {"mask.png": encode_png(decode_point_mask(prediction).astype(np.uint8) * 255)}
    if task in ("entity_segmentation", "semantic_segmentation"):
        labels = np.zeros(prediction.shape[:2], np.uint16)
        for index, mask in enumerate(decode_instance_masks(prediction), start=1):
            labels[mask & (labels == 0)] = index
        return {"instances.png": _png16(labels)}
    if task == "pose":
        centres = disc_centres(prediction)
        keypoints = [[round(float(x), 2), round(float(y), 2), 1] for x, y in centres]
        return {"keypoints.json": json.dumps({"keypoints": keypoints}, indent=1).encode()}
    return {}


def _png16(array: np.ndarray) -> bytes:
    import cv2

    ok, buffer = cv2.imencode(".png", array)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


def write_prediction(
    out_dir: Path, stem: str, task: str, rgb: np.ndarray, prediction: np.ndarray
) -> list[Path]:
    """Write the RGB prediction, its decoded outputs and an input | prediction preview."""
    written = []
    files = {
        "png": encode_png(prediction),
        "preview.png": encode_png(np.concatenate([rgb, prediction], axis=1)),
        **decoded_outputs(task, prediction),
    }
    for suffix, data in files.items():
        path = out_dir / f"{stem}.{task}.{suffix}"
        atomic_write(path, lambda handle, data=data: handle.write(data))
        written.append(path)
    return written


def run_predict(
    checkpoint: str | Path,
    images: list[str],
    out_dir: str | Path,
    options: PredictOptions,
    points: list[tuple[float, float]] | None = None,
) -> list[Path]:
    """Predict `options.task` for every image; every request is checked before the model
    loads, so a bad file or point fails fast with a clear message."""
    rgbs = {path: read_rgb(path) for path in images}
    normalised = {}
    for path, rgb in rgbs.items():
        if points:
            normalised[path] = pixel_points(points, rgb.shape[1], rgb.shape[0])
    loaded = load_checkpoint(checkpoint, options.device, options.resolution, options.lora)
    model, space, resolution = loaded.model, loaded.space, loaded.resolution
    options = with_trained_sampling(options, loaded.checked.info)
    out = Path(out_dir)
    written: list[Path] = []
    for path, rgb in rgbs.items():
        prediction = predict_image(model, space, rgb, options, normalised.get(path), resolution)
        written += write_prediction(out, Path(path).stem, options.task, rgb, prediction)
    record = {
        "checkpoint": str(checkpoint),
        "lora": options.lora,
        "task": options.task,
        "resolution": resolution,
        "one_step": options.one_step,
        "steps": 1 if options.one_step else options.steps,
        "guidance": options.guidance,
    }
    write_json(out / "predict.json", {**record, "images": list(images)})
    return written

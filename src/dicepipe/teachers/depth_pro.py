"""Apple Depth Pro (transformers `DepthProForDepthEstimation`) as a metric-depth teacher.

Pre- and post-processing are done here in torch on the model's device, because transformers'
DepthProImageProcessor needs torchvision (see ENVIRONMENT.md). They follow that processor:
uint8 -> [0, 1] -> normalise with mean = std = 0.5 -> bilinear resize (antialias off) to the
model's square input; the head's canonical inverse depth is scaled by W / f_px, resized back
to (H, W) and inverted with a clamp to [1e-4, 1e4], where f_px = 0.5 W / tan(0.5 fov).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from dicepipe.records import ItemError
from dicepipe.teachers.base import Label, TeacherInput
from dicepipe.weights import (
    dtype_name,
    resolve_device,
    resolve_dtype,
    resolve_weights,
    weights_digest,
)

if TYPE_CHECKING:
    import torch

MIN_INVERSE_DEPTH, MAX_INVERSE_DEPTH = 1e-4, 1e4
# Only guards degenerate (e.g. random-weight) FOV heads: a sane head predicts far inside it.
FOV_RANGE_DEG = (1.0, 179.0)


def depth_pro_input_size(config: object) -> int:
    """Side of the square input the model was built for: patch_size / min(scaled ratios).

    The smallest scaled image must be exactly one encoder patch (1536 for apple/DepthPro-hf).
    """
    patch = int(config.patch_size)
    size = patch / min(config.scaled_images_ratios)
    if size != int(size):
        raise ValueError(f"patch_size {patch} / {min(config.scaled_images_ratios)} is not whole")
    return int(size)


def preprocess_images(
    images: Sequence[torch.Tensor], size: int, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """uint8 (H, W, 3) tensors (any sizes, on the target device) -> (B, 3, size, size) input."""
    import torch
    import torch.nn.functional as F

    batch = []
    for image in images:
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected uint8 (H, W, 3), got {image.dtype} {tuple(image.shape)}")
        x = image.permute(2, 0, 1).unsqueeze(0).float() / 255.0
        x = (x - 0.5) / 0.5
        batch.append(F.interpolate(x, size=(size, size), mode="bilinear", antialias=False))
    pixels = torch.cat(batch)
    return pixels if dtype is None else pixels.to(dtype)


def focal_from_fov(fov_deg: torch.Tensor, width: torch.Tensor | float) -> torch.Tensor:
    """Focal length in pixels from a horizontal field of view in degrees: 0.5 W / tan(fov / 2)."""
    import torch

    return 0.5 * width / torch.tan(0.5 * torch.deg2rad(fov_deg.float()))


def inverse_depth_to_depth(
    inverse_depth: torch.Tensor, focal_px: torch.Tensor, sizes: Sequence[tuple[int, int]]
) -> list[torch.Tensor]:
    """Depth Pro's canonical inverse depth (B, h, w) -> metric depth (H_i, W_i) per image."""
    import torch
    import torch.nn.functional as F

    if inverse_depth.ndim != 3 or not len(sizes) == len(inverse_depth) == len(focal_px):
        raise ValueError("need one focal length and one (H, W) per inverse-depth map")
    out = []
    pairs = zip(inverse_depth.float(), focal_px.float(), sizes, strict=True)
    for inv, focal, (height, width) in pairs:
        scaled = (inv * width / focal)[None, None]
        scaled = F.interpolate(scaled, size=(height, width), mode="bilinear")[0, 0]
        out.append(1.0 / torch.clamp(scaled, min=MIN_INVERSE_DEPTH, max=MAX_INVERSE_DEPTH))
    return out


class DepthProTeacher:
    """Metric depth + focal length from Depth Pro; implements `teachers.base.Teacher`.

    weights: local folder or hub id (local HF cache only unless allow_download).
    dtype: auto (bf16/fp16 on CUDA, fp32 on CPU) | float32 | bfloat16 | float16.
    batch_size: images per forward pass on an accelerator; the CPU passes one image at a time,
    since oneDNN's convolutions round differently for other batch sizes and the batch size
    must not change the labels (it buys little on the CPU).
    use_exif_focal: use TeacherInput.focal_px when given instead of the FOV head's estimate.
    torch_threads: the CPU thread count the labels are computed with (`configure_torch` sets
    it), recorded in the identity with the device type, since both change float results.
    """

    def __init__(
        self,
        weights: str | Path = "apple/DepthPro-hf",
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 4,
        use_exif_focal: bool = True,
        allow_download: bool = False,
        cache_dir: str | Path | None = None,
        torch_threads: int | None = None,
    ) -> None:
        from transformers import DepthProForDepthEstimation

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        folder = resolve_weights(
            weights, allow_download=allow_download, cache_dir=cache_dir, param="label.weights"
        )
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = 1 if self.device.type == "cpu" else batch_size
        self.use_exif_focal = use_exif_focal
        self.model = DepthProForDepthEstimation.from_pretrained(
            folder, dtype=self.dtype, use_safetensors=True
        )
        self.model.to(self.device).eval()
        if self.model.fov_model is None and not use_exif_focal:
            raise ValueError(f"{folder} has no FOV head (use_fov_model=false): no focal length")
        self.input_size = depth_pro_input_size(self.model.config)
        focal = "exif" if use_exif_focal else "fov"
        self.identity = f"depth_pro:{weights_digest(folder)}:{dtype_name(self.dtype)}:{focal}"
        if torch_threads is not None:  # what changes float results: device type, CPU threads
            self.identity += f":{self.device.type}:threads{torch_threads}"

    def label(self, batch: Sequence[TeacherInput]) -> list[Label]:
        """Metric depth (H, W) and focal length per image, in input order."""
        labels: list[Label] = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start : start + self.batch_size]
            depths, focals = self.predict([item.image for item in chunk], self._focals(chunk))
            for item, depth, focal in zip(chunk, depths, focals, strict=True):
                labels.append(Label(item.key, depth.cpu().numpy(), focal, None, self.identity))
        return labels

    def _focals(self, chunk: Sequence[TeacherInput]) -> list[float | None]:
        if not self.use_exif_focal:
            return [None] * len(chunk)
        return [item.focal_px for item in chunk]

    def predict(
        self, images: Sequence[np.ndarray], known_focal_px: Sequence[float | None]
    ) -> tuple[list[torch.Tensor], list[float]]:
        """One forward pass: depth maps (float32, on the device) and the focal lengths used."""
        import torch

        tensors = [_to_device(image, self.device) for image in images]
        with torch.inference_mode():
            pixels = preprocess_images(tensors, self.input_size, self.dtype)
            out = self.model(pixel_values=pixels)
            widths = torch.tensor([t.shape[1] for t in tensors], device=self.device)
            focal = self._focal_px(out.field_of_view, widths, known_focal_px)
            sizes = [(t.shape[0], t.shape[1]) for t in tensors]
            depths = inverse_depth_to_depth(out.predicted_depth, focal, sizes)
        return depths, [float(f) for f in focal.cpu()]

    def _focal_px(
        self,
        fov_deg: torch.Tensor | None,
        widths: torch.Tensor,
        known: Sequence[float | None],
    ) -> torch.Tensor:
        import torch

        focal = torch.full((len(known),), math.nan, device=self.device)
        if fov_deg is not None:
            focal = focal_from_fov(fov_deg.float().clamp(*FOV_RANGE_DEG), widths.float())
        for i, value in enumerate(known):
            if value is not None:
                if not (math.isfinite(value) and value > 0):
                    raise ItemError("invalid_focal", f"known focal length {value} is not > 0")
                focal[i] = value
        if not torch.isfinite(focal).all():
            raise ValueError("no focal length: the checkpoint has no FOV head and no EXIF focal")
        return focal


def _to_device(image: np.ndarray, device: torch.device) -> torch.Tensor:
    import torch

    if not image.flags.writeable:  # torch warns on read-only buffers (np.asarray of PIL)
        image = image.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(image))
    # non_blocking only overlaps when the host buffer is pinned (label_stream pins it)
    return tensor.to(device, non_blocking=tensor.is_pinned())


def depth_pro_config(size: Literal["tiny", "full"] = "tiny") -> object:
    """A DepthProConfig with a FOV head: `tiny` (~180k params, 128 px input) or `full`
    (the apple/DepthPro-hf architecture: three DINOv2 ViT-L/16 at 384, 1536 px input)."""
    from transformers import DepthProConfig

    if size == "full":
        vit = _dinov2(hidden=1024, layers=24, heads=16, mlp=4096, patch=16, image=384)
        return DepthProConfig(
            patch_size=384,
            use_fov_model=True,
            image_model_config=vit,
            patch_model_config=dict(vit),
            fov_model_config=dict(vit),
        )
    if size != "tiny":
        raise ValueError(f"size must be 'tiny' or 'full', got {size!r}")
    vit = _dinov2(hidden=32, layers=2, heads=2, mlp=64, patch=8, image=32)
    return DepthProConfig(
        patch_size=32,
        intermediate_hook_ids=[1, 0],
        intermediate_feature_dims=[16, 16],
        scaled_images_ratios=[0.25, 0.5, 1.0],
        scaled_images_overlap_ratios=[0.0, 0.5, 0.25],
        scaled_images_feature_dims=[32, 32, 16],
        fusion_hidden_size=16,
        use_fov_model=True,
        image_model_config=vit,
        patch_model_config=dict(vit),
        fov_model_config={**vit, "num_hidden_layers": 1},
    )


def _dinov2(hidden: int, layers: int, heads: int, mlp: int, patch: int, image: int) -> dict:
    return {
        "model_type": "dinov2",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": mlp,
        "patch_size": patch,
        "image_size": image,
    }


def save_random_depth_pro(
    folder: str | Path, size: Literal["tiny", "full"] = "tiny", seed: int = 0
) -> Path:
    """Write a random-weight Depth Pro checkpoint (config + safetensors) to `folder`."""
    import torch
    from transformers import DepthProForDepthEstimation

    torch.manual_seed(seed)
    model = DepthProForDepthEstimation(depth_pro_config(size)).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return Path(folder)

"""Marigold normals (diffusers `MarigoldNormalsPipeline`) as a diffusion normals teacher.

Convention: the pipeline returns unit normals with X right, Y up, Z toward the viewer (see
diffusers' `MarigoldImageProcessor.visualize_normals` and the Marigold usage guide), which is
exactly the dicepipe camera frame, so `MARIGOLD_TO_DICEPIPE` is the identity; checkpoints
trained with `use_full_z_range=false` are mapped to that frame inside the pipeline already.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dicepipe.teachers.base import Label, Teacher, TeacherInput
from dicepipe.weights import (
    dtype_name,
    resolve_device,
    resolve_dtype,
    resolve_weights,
    weights_digest,
)

if TYPE_CHECKING:
    import torch

MARIGOLD_TO_DICEPIPE = np.array([1.0, 1.0, 1.0], dtype=np.float32)  # per-axis sign flips


def marigold_to_dicepipe(normals: torch.Tensor) -> np.ndarray:
    """Pipeline output (N, 3, H, W) -> (N, H, W, 3) float32 unit normals, dicepipe frame."""
    array = normals.float().permute(0, 2, 3, 1).cpu().numpy()
    return (array * MARIGOLD_TO_DICEPIPE).astype(np.float32)


def latent_seed(seed: int, key: str, member: int) -> int:
    """Seed of one ensemble member's initial noise, from the item key: labels do not depend on
    which other items share the batch."""
    digest = hashlib.sha256(f"{seed}:{member}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class MarigoldNormalsTeacher:
    """Normals from Marigold; depth and focal length from `depth_teacher` when given, else NaN
    depth and the input's known focal length (NaN when unknown).

    num_inference_steps / processing_resolution: None -> the checkpoint's defaults
    (processing_resolution 0 = the input's own size). ensemble_size: predictions per image.
    """

    def __init__(
        self,
        weights: str | Path = "prs-eth/marigold-normals-v1-1",
        *,
        depth_teacher: Teacher | None = None,
        num_inference_steps: int | None = None,
        ensemble_size: int = 1,
        processing_resolution: int | None = None,
        seed: int = 0,
        batch_size: int = 4,
        device: str = "auto",
        dtype: str = "auto",
        allow_download: bool = False,
        cache_dir: str | Path | None = None,
    ) -> None:
        from diffusers import MarigoldNormalsPipeline

        if ensemble_size < 1 or batch_size < 1:
            raise ValueError(f"need ensemble_size, batch_size >= 1: {ensemble_size}, {batch_size}")
        folder = resolve_weights(
            weights,
            allow_download=allow_download,
            cache_dir=cache_dir,
            param="label.marigold.weights",
        )
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.pipe = MarigoldNormalsPipeline.from_pretrained(
            folder, dtype=self.dtype, use_safetensors=True
        ).to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.steps = num_inference_steps or self.pipe.default_denoising_steps
        self.resolution = (
            self.pipe.default_processing_resolution
            if processing_resolution is None
            else processing_resolution
        )
        if self.steps is None or self.resolution is None:
            raise ValueError(f"{folder} sets no default steps/resolution: pass them explicitly")
        self.depth_teacher, self.ensemble_size = depth_teacher, ensemble_size
        self.seed, self.batch_size = seed, batch_size
        own = (
            f"normals_marigold:{weights_digest(folder)}:{dtype_name(self.dtype)}:"
            f"steps={self.steps},ens={ensemble_size},res={self.resolution},seed={seed}"
        )
        self.identity = own if depth_teacher is None else f"{depth_teacher.identity}+{own}"

    def label(self, batch: Sequence[TeacherInput]) -> list[Label]:
        """One Label per input, in order, with Marigold normals (H, W, 3)."""
        normals = self.predict(batch)
        if self.depth_teacher is not None:
            bases = self.depth_teacher.label(batch)
        else:
            bases = [_no_depth(item) for item in batch]
        return [
            Label(item.key, base.depth, base.focal_px, n, self.identity)
            for item, base, n in zip(batch, bases, normals, strict=True)
        ]

    def predict(self, batch: Sequence[TeacherInput]) -> list[np.ndarray]:
        """Unit normals (H, W, 3) float32 per input; same-sized images share pipeline calls."""
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, item in enumerate(batch):
            groups[item.image.shape].append(index)
        out: list[np.ndarray | None] = [None] * len(batch)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for i, n in zip(chunk, self._run([batch[i] for i in chunk]), strict=True):
                    out[i] = n
        return out  # type: ignore[return-value]

    def _run(self, items: Sequence[TeacherInput]) -> np.ndarray:
        import torch

        images = torch.from_numpy(np.stack([item.image for item in items])).to(self.device)
        images = images.permute(0, 3, 1, 2).float() / 255.0
        generators = [
            torch.Generator(device=self.device).manual_seed(latent_seed(self.seed, item.key, e))
            for item in items
            for e in range(self.ensemble_size)
        ]
        with torch.inference_mode():
            result = self.pipe(
                images,
                num_inference_steps=self.steps,
                ensemble_size=self.ensemble_size,
                processing_resolution=self.resolution,
                match_input_resolution=True,
                batch_size=len(items) * self.ensemble_size,
                generator=generators,
                output_type="pt",
            )
        return marigold_to_dicepipe(result.prediction)


def _no_depth(item: TeacherInput) -> Label:
    height, width = item.image.shape[:2]
    focal = math.nan if item.focal_px is None else float(item.focal_px)
    return Label(item.key, np.full((height, width), np.nan, np.float32), focal, None, "")


def save_random_marigold(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny random-weight MarigoldNormalsPipeline (safetensors) to `folder`: a UNet
    (in 8, out 4), a 2-level VAE, DDIM, a tiny CLIP text encoder and a toy BPE tokenizer."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        MarigoldNormalsPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        norm_num_groups=8,
        cross_attention_dim=16,
        attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1,
        norm_num_groups=8,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=16,
            max_position_embeddings=8,
            projection_dim=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "a": 3}
        (Path(tokenizer_dir) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tokenizer_dir) / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, model_max_length=8)
    pipe = MarigoldNormalsPipeline(
        unet=unet,
        vae=vae,
        scheduler=DDIMScheduler(),
        text_encoder=text,
        tokenizer=tokenizer,
        prediction_type="normals",
        use_full_z_range=True,
        default_denoising_steps=2,
        default_processing_resolution=32,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)

"""Where the diffusion runs: RGB pixels in [-1, 1] or SD3 VAE latents."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from diffusers import AutoencoderKL


class Space(Protocol):
    """Encodes images in [-1, 1] (B, 3, H, W) to model inputs and back."""

    channels: int

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> model-space tensors."""
        ...

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space tensors -> images (about [-1, 1])."""
        ...


class PixelSpace:
    """Identity space: the model denoises RGB directly (patchified by its pos_embed)."""

    channels = 3

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Return the images unchanged."""
        return images

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Return the tensor unchanged."""
        return x


class LatentSpace:
    """SD3 VAE latents: ``(mode(z) - shift) * scale`` on encode, the inverse on decode."""

    def __init__(self, vae: AutoencoderKL) -> None:
        self.vae = vae.eval().requires_grad_(False)
        self.channels = int(vae.config.latent_channels)
        self.shift = float(vae.config.shift_factor or 0.0)
        self.scale = float(vae.config.scaling_factor)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> scaled latents (B, C, H/8, W/8), VAE dtype."""
        images = images.to(self.vae.device, self.vae.dtype)
        latents = self.vae.encode(images).latent_dist.mode()
        return (latents - self.shift) * self.scale

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images."""
        latents = x.to(self.vae.device, self.vae.dtype) / self.scale + self.shift
        return self.vae.decode(latents).sample


def make_space(
    config: Mapping[str, Any], vae: AutoencoderKL | str | Path | None = None
) -> PixelSpace | LatentSpace:
    """Space for a DiceptionModel config or preset: pixels for 3 input channels, else the given VAE.

    ``vae`` may be a loaded AutoencoderKL, its folder, or an SD3 folder with a ``vae/`` subfolder.
    """
    channels = int(config["transformer_config"]["in_channels"])
    if channels == 3 and vae is None:
        return PixelSpace()
    if vae is None:
        raise ValueError(f"a {channels}-channel model works in latent space: give a VAE")
    if not isinstance(vae, AutoencoderKL):
        folder = Path(vae)
        sub = "vae" if (folder / "vae" / "config.json").exists() else None
        vae = AutoencoderKL.from_pretrained(str(folder), subfolder=sub)
    space = LatentSpace(vae)
    if space.channels != channels:
        raise ValueError(f"VAE has {space.channels} latent channels, model expects {channels}")
    return space

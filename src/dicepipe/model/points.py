"""Point prompts -> context tokens: SAM-style random Fourier features, an MLP, point flags."""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_POINTS = 5


class PointEncoder(nn.Module):
    """Encode point slots of (x, y) in [0, 1] as ``dim``-wide context tokens.

    Real points become ``MLP(fourier(p)) + point_embed``; padded slots (``point_mask`` False)
    become the learned ``no_point_embed``, as in DICEPTION's point-prompt formulation.
    """

    def __init__(
        self, dim: int, *, num_frequencies: int = 64, scale: float = 1.0, seed: int = 0
    ) -> None:
        super().__init__()
        self.num_frequencies, self.scale, self.seed = num_frequencies, scale, seed
        # A persistent buffer: checkpoints carry the exact matrix.
        self.register_buffer("gaussian", self._gaussian())
        self.mlp = nn.Sequential(
            nn.Linear(2 * num_frequencies, dim), nn.GELU(), nn.Linear(dim, dim)
        )
        self.point_embed = nn.Parameter(torch.randn(dim) * 0.02)
        self.no_point_embed = nn.Parameter(torch.randn(dim) * 0.02)

    def _gaussian(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        # On CPU explicitly, so a meta-device context (parameter counting) cannot reject the
        # generator.
        shape = (2, self.num_frequencies)
        return torch.randn(shape, generator=generator, device="cpu") * self.scale

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-initialise in place (after ``to_empty``): seeded matrix, fresh MLP and flags."""
        self.gaussian.copy_(self._gaussian())
        for layer in (self.mlp[0], self.mlp[2]):
            layer.reset_parameters()
        nn.init.normal_(self.point_embed, std=0.02)
        nn.init.normal_(self.no_point_embed, std=0.02)

    def fourier(self, points: torch.Tensor) -> torch.Tensor:
        """Random Fourier features (..., 2) -> (..., 2 * num_frequencies), computed in fp32."""
        coords = points.float() * 2.0 - 1.0
        projected = 2.0 * math.pi * coords @ self.gaussian.float()
        return torch.cat([projected.sin(), projected.cos()], dim=-1)

    def forward(self, points: torch.Tensor, point_mask: torch.Tensor) -> torch.Tensor:
        """Points (B, P, 2) in [0, 1] and mask (B, P) bool -> tokens (B, P, dim)."""
        weight = self.mlp[0].weight
        embedded = self.mlp(self.fourier(points).to(weight.dtype)) + self.point_embed
        padding = self.no_point_embed.to(embedded.dtype).expand_as(embedded)
        return torch.where(point_mask[..., None].bool(), embedded, padding)

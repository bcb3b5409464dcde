"""Surface normals from metric depth and a focal length, in torch (batched, any device).

Camera frame (dicepipe convention): X right, Y up, Z toward the viewer, so visible points have
Z = -depth. Pinhole model with the principal point at the image centre and pixel centres at
(u + 0.5, v + 0.5); depth is z-depth (distance along the optical axis).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def unproject(depth: torch.Tensor, focal_px: torch.Tensor) -> torch.Tensor:
    """(B, H, W) z-depth and (B,) focal lengths -> (B, H, W, 3) camera-frame points."""
    import torch

    if depth.ndim != 3:
        raise ValueError(f"depth must be (B, H, W), got {tuple(depth.shape)}")
    focal = torch.as_tensor(focal_px, dtype=depth.dtype, device=depth.device).reshape(-1, 1, 1)
    if focal.shape[0] != depth.shape[0]:
        raise ValueError(f"need {depth.shape[0]} focal lengths, got {focal.shape[0]}")
    if not bool(torch.all(torch.isfinite(focal) & (focal > 0))):
        raise ValueError("focal lengths must be finite and positive")
    _, height, width = depth.shape
    u = torch.arange(width, device=depth.device, dtype=depth.dtype) + 0.5 - width / 2
    v = torch.arange(height, device=depth.device, dtype=depth.dtype) + 0.5 - height / 2
    x = u.reshape(1, 1, -1) * depth / focal
    y = -v.reshape(1, -1, 1) * depth / focal
    return torch.stack([x, y, -depth], dim=-1)


def normals_from_depth(
    depth: torch.Tensor,
    focal_px: torch.Tensor,
    max_relative_jump: float = 0.05,
    step: int = 1,
) -> torch.Tensor:
    """Unit normals (B, H, W, 3) facing the camera, NaN at depth discontinuities and holes.

    Tangents are central differences of the unprojected points over +-`step` pixels (one-sided
    at the border); the normal is their cross product. A pixel whose depth differs from any of
    its four neighbours at distance `step` by more than `max_relative_jump` times its own depth
    sits on an occlusion edge and gets NaN, as do pixels with non-finite or non-positive depth.
    """
    import torch
    import torch.nn.functional as F

    if step < 1 or not max_relative_jump > 0:
        raise ValueError(f"need step >= 1, max_relative_jump > 0; got {step}, {max_relative_jump}")
    depth = depth.float()
    depth = torch.where(torch.isfinite(depth) & (depth > 0), depth, torch.nan)
    points = unproject(depth, focal_px).permute(0, 3, 1, 2)  # (B, 3, H, W)
    padded = F.pad(points, (step, step, step, step), mode="replicate")
    right, left = padded[..., step:-step, 2 * step :], padded[..., step:-step, : -2 * step]
    down, up = padded[..., 2 * step :, step:-step], padded[..., : -2 * step, step:-step]
    normals = torch.cross(right - left, up - down, dim=1)
    facing_away = (normals * points).sum(dim=1, keepdim=True) > 0
    normals = torch.where(facing_away, -normals, normals)
    normals = normals / torch.linalg.vector_norm(normals, dim=1, keepdim=True)
    edges = _occlusion_edges(depth, max_relative_jump, step)
    normals = torch.where(edges.unsqueeze(1), torch.nan, normals)
    return normals.permute(0, 2, 3, 1).contiguous()


def _occlusion_edges(depth: torch.Tensor, max_relative_jump: float, step: int) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    padded = F.pad(depth.unsqueeze(1), (step, step, step, step), mode="replicate")[:, 0]
    neighbours = (
        padded[:, step:-step, 2 * step :],
        padded[:, step:-step, : -2 * step],
        padded[:, 2 * step :, step:-step],
        padded[:, : -2 * step, step:-step],
    )
    jump = torch.stack([(n - depth).abs() for n in neighbours]).amax(dim=0)
    return ~(jump <= max_relative_jump * depth)

"""Surface-normal target: unit normals (camera frame, X right, Y up, Z to the viewer) <-> RGB.

RGB = round((n + 1) / 2 * 255). A pixel with any NaN component is invalid and encodes as the
zero vector, (128, 128, 128) (127.5 rounds half-to-even to 128); `decode_normals` turns
vectors shorter than `min_norm` (such as that grey) back into NaN.
"""

from __future__ import annotations

import numpy as np


def encode_normals(normals: np.ndarray) -> np.ndarray:
    """Encode (H, W, 3) float normals in [-1, 1] as a (H, W, 3) uint8 target.

    Components are clipped to [-1, 1] (vectors are not renormalised, so encoding is a pure
    per-channel map). Pixels with any non-finite component become (128, 128, 128).
    """
    arr = np.asarray(normals)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"normals must have shape (H, W, 3), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"normals must be a float array, got dtype {arr.dtype}")
    n = arr.astype(np.float64)
    invalid = ~np.isfinite(n).all(axis=2)
    n[invalid] = 0.0
    rgb = np.round((np.clip(n, -1.0, 1.0) + 1.0) / 2.0 * 255.0)
    return rgb.astype(np.uint8)


def decode_normals(target: np.ndarray, *, min_norm: float = 0.5) -> np.ndarray:
    """Decode a (H, W, 3) uint8 normal target to float32 unit vectors (renormalised).

    Pixels whose decoded vector is shorter than `min_norm` (e.g. the invalid grey) are NaN.
    """
    arr = np.asarray(target)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"target must have shape (H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"target must be uint8, got dtype {arr.dtype}")
    n = arr.astype(np.float64) / 255.0 * 2.0 - 1.0
    norm = np.linalg.norm(n, axis=2, keepdims=True)
    short = norm[..., 0] < min_norm
    out = n / np.where(norm > 0, norm, 1.0)
    out[short] = np.nan
    return out.astype(np.float32)

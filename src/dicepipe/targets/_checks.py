"""Input validation shared by the target encoders and decoders (private)."""

from __future__ import annotations

import numpy as np


def as_bool_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """Return `mask` as a 2-D bool array; accept bool or integer 0/1 arrays, else ValueError."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (H, W), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be bool or integer 0/1, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name} must only hold 0 and 1")
    return arr.astype(bool)


def as_rgb_uint8(rgb: np.ndarray, name: str = "rgb") -> np.ndarray:
    """Return `rgb` if it is a (H, W, 3) uint8 array with H, W > 0, else raise ValueError."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got dtype {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return arr


def check_generator(rng: object) -> np.random.Generator:
    """Return `rng` if it is a numpy Generator, else raise TypeError."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng

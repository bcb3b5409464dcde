"""Foreground colour estimation for matting composites, and its on-disk cache.

A matting photo's hair pixels mix the person with the studio backdrop; pasting the raw photo
would carry that backdrop colour onto every new background. pymatting's multilevel estimator
recovers the pure foreground colour F from the photo and its alpha.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from dicepipe.storage import atomic_write

# Bump when the estimator or its settings change: it is part of every cache key.
ESTIMATOR_VERSION = "pymatting-ml-v1"


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Estimate the pure foreground colour: (H, W, 3) float32 in [0, 1].

    `rgb` is (H, W, 3) uint8, `alpha` (H, W) float in [0, 1]; uses
    `pymatting.estimate_foreground_ml` (multilevel, default settings).
    """
    from pymatting import estimate_foreground_ml

    if rgb.shape[:2] != alpha.shape or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"need (H, W, 3) rgb and (H, W) alpha, got {rgb.shape}, {alpha.shape}")
    image = rgb.astype(np.float64) / 255.0
    a = np.clip(alpha.astype(np.float64), 0.0, 1.0)
    fg = estimate_foreground_ml(image, a)
    return np.clip(fg, 0.0, 1.0).astype(np.float32)


def foreground_cache_key(image_bytes: bytes, alpha_bytes: bytes) -> str:
    """sha256 over the estimator version and the two files' bytes (length-prefixed)."""
    h = hashlib.sha256(ESTIMATOR_VERSION.encode())
    for part in (image_bytes, alpha_bytes):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def quantise_foreground(fg: np.ndarray) -> np.ndarray:
    """Round a [0, 1] float foreground to uint8, the form that is cached and composited."""
    return np.clip(np.round(fg * 255.0), 0, 255).astype(np.uint8)


def _read_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    import cv2

    try:
        data = np.frombuffer(path.read_bytes(), np.uint8)
    except FileNotFoundError:
        return None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None or bgr.shape != shape:
        return None  # damaged or foreign entry: recompute and overwrite
    return np.ascontiguousarray(bgr[..., ::-1])


def cached_foreground(
    cache_dir: Path,
    image_bytes: bytes,
    alpha_bytes: bytes,
    rgb: np.ndarray,
    alpha: np.ndarray,
) -> np.ndarray:
    """Estimated foreground as (H, W, 3) uint8, from `cache_dir` or computed and stored there.

    The entry is a lossless PNG named by `foreground_cache_key`; a computed result is quantised
    exactly as a cached one, so a cold and a warm run give the same bytes.
    """
    import cv2

    key = foreground_cache_key(image_bytes, alpha_bytes)
    path = Path(cache_dir) / key[:2] / f"{key}.png"
    hit = _read_cached(path, rgb.shape)
    if hit is not None:
        return hit
    fg = quantise_foreground(estimate_foreground(rgb, alpha))
    ok, png = cv2.imencode(".png", np.ascontiguousarray(fg[..., ::-1]))
    if not ok:
        raise RuntimeError(f"could not encode the foreground cache entry {path}")
    atomic_write(path, lambda handle: handle.write(png.tobytes()))
    return fg

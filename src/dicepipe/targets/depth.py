"""Depth target: metric depth -> 3-channel uint8 image (DICEPTION / GenPercept recipe) and back.

The target is the depth clipped to its lo/hi quantiles over valid pixels, normalised to [0, 1]
either in disparity space (1/d: near = 1 = bright, far = 0) or in depth space (near = 0 = dark),
quantised with round(x * 255) and repeated to 3 channels. Invalid pixels (NaN, inf, <= 0) are
written as 0, which is indistinguishable from the far end (disparity) or the near end (depth):
the raw metric depth is kept beside the target for evaluation, so that ambiguity is harmless.
"""

from __future__ import annotations

import numpy as np

SPACES = ("disparity", "depth")
#: (lo, hi) used by `decode_depth` when no meta is given: a relative depth, exact up to the
#: affine map that evaluation fits anyway (scale and shift in the encoding space).
RELATIVE_RANGE = (1.0, 10.0)


def _check_space(space: str) -> str:
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    return space


def _normalise(clipped: np.ndarray, lo: float, hi: float, space: str) -> np.ndarray:
    if hi <= lo:
        # Constant depth: no contrast to encode; mid-grey keeps it apart from invalid (0).
        return np.full_like(clipped, 0.5)
    if space == "disparity":
        return (1.0 / clipped - 1.0 / hi) / (1.0 / lo - 1.0 / hi)
    return (clipped - lo) / (hi - lo)


def encode_depth(
    depth: np.ndarray,
    *,
    space: str = "disparity",
    quantiles: tuple[float, float] = (0.02, 0.98),
) -> tuple[np.ndarray, dict]:
    """Encode metric z-depth (H, W) as a (H, W, 3) uint8 target.

    Valid pixels are finite and > 0. `lo`, `hi` are the `quantiles` of the valid depths;
    depth is clipped to [lo, hi] and normalised per `space` ("disparity": near = 255,
    "depth": near = 0). Invalid pixels are 0. A constant depth (lo == hi) encodes as 128.
    Returns (target, meta) with meta = {"space", "lo", "hi"} (lo/hi in depth units, floats).
    Raises ValueError on a non-2-D or non-float input, bad quantiles, or no valid pixel.
    """
    _check_space(space)
    arr = np.asarray(depth)
    if arr.ndim != 2:
        raise ValueError(f"depth must be 2-D (H, W), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"depth must be a float array, got dtype {arr.dtype}")
    q_lo, q_hi = quantiles
    if not 0.0 <= q_lo <= q_hi <= 1.0:
        raise ValueError(f"quantiles must satisfy 0 <= lo <= hi <= 1, got {quantiles}")
    d = arr.astype(np.float64)
    valid = np.isfinite(d) & (d > 0)
    if not valid.any():
        raise ValueError("no valid depth pixels")
    lo, hi = (float(v) for v in np.quantile(d[valid], [q_lo, q_hi]))
    x = _normalise(np.clip(d[valid], lo, hi), lo, hi, space)
    plane = np.zeros(d.shape, dtype=np.uint8)
    plane[valid] = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    target = np.repeat(plane[:, :, None], 3, axis=2)
    return target, {"space": space, "lo": lo, "hi": hi}


def decode_depth(
    target: np.ndarray,
    meta: dict | None = None,
    *,
    space: str = "disparity",
    relative_range: tuple[float, float] = RELATIVE_RANGE,
) -> np.ndarray:
    """Decode a depth target (H, W, 3) or (H, W) uint8 back to depth, float32 (H, W).

    The channels are averaged (a model's prediction need not be grey). With `meta` (as
    returned by `encode_depth`), meta["space"], meta["lo"] and meta["hi"] are used and the
    result is metric depth clipped to [lo, hi]; meta's space takes precedence over `space`.
    Without meta the result is relative depth in `relative_range` (default [1, 10]) under
    `space`: exact up to the scale-and-shift (in that space) that evaluation fits. Invalid
    pixels cannot be told from the range end that shares the value 0 and decode as that end.
    """
    arr = np.asarray(target)
    if arr.ndim == 3 and arr.shape[2] == 3:
        x = arr.astype(np.float64).mean(axis=2) / 255.0
    elif arr.ndim == 2:
        x = arr.astype(np.float64) / 255.0
    else:
        raise ValueError(f"target must have shape (H, W, 3) or (H, W), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"target must be uint8, got dtype {arr.dtype}")
    if meta is not None:
        missing = {"lo", "hi"} - set(meta)
        if missing:
            raise ValueError(f"meta lacks {sorted(missing)}")
        space = meta.get("space", space)
        lo, hi = float(meta["lo"]), float(meta["hi"])
    else:
        lo, hi = (float(v) for v in relative_range)
    _check_space(space)
    if not 0.0 < lo <= hi:
        raise ValueError(f"need 0 < lo <= hi, got lo={lo}, hi={hi}")
    if space == "disparity":
        disp = x * (1.0 / lo - 1.0 / hi) + 1.0 / hi
        out = 1.0 / disp
    else:
        out = lo + x * (hi - lo)
    return out.astype(np.float32)

"""Colour clustering for the mask decoder (Algorithm 2, lines 1-3, plus the refinements).

See `dicepipe.targets.decode_masks` for the whole algorithm and what each threshold means.
"""

from __future__ import annotations

import numpy as np

from dicepipe.targets._checks import as_rgb_uint8
from dicepipe.targets.thresholds import MaskDecodeParams

_SPLIT_SEEDS = 3  # densest far colours tried, in turn, as the second 2-means seed


def count_histogram_peaks(rgb: np.ndarray, params: MaskDecodeParams) -> list[int]:
    """Number of peaks of each channel's smoothed 256-bin histogram (Algorithm 2, line 1)."""
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    rgb = as_rgb_uint8(rgb)
    min_prominence = params.peak_prominence * rgb.shape[0] * rgb.shape[1]
    counts = []
    for c in range(3):
        hist = np.bincount(rgb[..., c].ravel(), minlength=256).astype(np.float64)
        if params.histogram_sigma > 0:
            hist = gaussian_filter1d(hist, params.histogram_sigma, mode="constant")
        # Zero padding lets peaks at 0 (the black background) and 255 be found.
        peaks, _ = find_peaks(np.pad(hist, 1), prominence=max(min_prominence, 1e-9))
        counts.append(int(peaks.size))
    return counts


def colour_bins(rgb: np.ndarray, quantization: int) -> tuple[np.ndarray, np.ndarray]:
    """Occupied colour bins: (mean colour (U, 3) float64, pixel count (U,) float64)."""
    pixels = as_rgb_uint8(rgb).reshape(-1, 3)
    side = (255 // quantization) + 1
    q = (pixels // quantization).astype(np.int64)
    codes = (q[:, 0] * side + q[:, 1]) * side + q[:, 2]
    size = side**3
    counts = np.bincount(codes, minlength=size)
    occupied = np.flatnonzero(counts)
    sums = np.stack(
        [np.bincount(codes, weights=pixels[:, c], minlength=size)[occupied] for c in range(3)],
        axis=1,
    )
    weights = counts[occupied].astype(np.float64)
    return sums / weights[:, None], weights


def _nearest(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    labels = d2.argmin(axis=1)
    return labels, np.sqrt(d2[np.arange(len(points)), labels])


def _kmeans(
    points: np.ndarray, weights: np.ndarray, init: int | np.ndarray, seed: int, n_init: int
) -> np.ndarray:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    if isinstance(init, int):
        model = KMeans(n_clusters=init, n_init=n_init, random_state=seed)
    else:
        model = KMeans(n_clusters=len(init), init=init, n_init=1, random_state=seed)
    # One thread: the inputs are a few thousand colour bins, and decoders run inside parallel
    # workers, where OpenMP threads only fight each other (measured 50x slower).
    with threadpool_limits(limits=1):
        model.fit(points, sample_weight=weights)
    return model.cluster_centers_


def _two_means(
    points: np.ndarray, weights: np.ndarray, a: np.ndarray, b: np.ndarray, iters: int = 20
) -> tuple[np.ndarray, np.ndarray, float, float]:
    to_b = np.zeros(len(points), dtype=bool)
    for _ in range(iters):
        to_b = ((points - b) ** 2).sum(axis=1) < ((points - a) ** 2).sum(axis=1)
        if to_b.all() or not to_b.any():
            break
        a = np.average(points[~to_b], axis=0, weights=weights[~to_b])
        b = np.average(points[to_b], axis=0, weights=weights[to_b])
    return a, b, float(weights[~to_b].sum()), float(weights[to_b].sum())


def _densest(points: np.ndarray, weights: np.ndarray, cell: float, top: int) -> list[np.ndarray]:
    """Mean colours of the `top` heaviest grid cells (side `cell`), heaviest first."""
    q = np.floor(points / cell).astype(np.int64)
    _, inverse = np.unique(q, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    mass = np.bincount(inverse, weights=weights)
    order = sorted(range(mass.size), key=lambda i: (-mass[i], i))[:top]
    return [np.average(points[inverse == i], axis=0, weights=weights[inverse == i]) for i in order]


def _split(
    points: np.ndarray,
    weights: np.ndarray,
    centre: np.ndarray,
    far: np.ndarray,
    params: MaskDecodeParams,
) -> list[np.ndarray] | None:
    """2-means of one cluster seeded at its centre and at one of its densest far colours."""
    for seed in _densest(points[far], weights[far], params.rgb_tolerance, _SPLIT_SEEDS):
        a, b, wa, wb = _two_means(points, weights, centre, seed)
        if np.linalg.norm(a - b) >= params.split_distance and min(wa, wb) >= params.min_area:
            return [a, b]
    return None


def _split_once(
    points: np.ndarray, weights: np.ndarray, centres: np.ndarray, params: MaskDecodeParams
) -> np.ndarray | None:
    labels, dist = _nearest(points, centres)
    budget = params.max_clusters - len(centres)
    out: list[np.ndarray] = []
    for j, centre in enumerate(centres):
        member = labels == j
        far = dist[member] > params.rgb_tolerance
        halves = None
        if budget > 0 and weights[member][far].sum() >= params.min_area:
            halves = _split(points[member], weights[member], centre, far, params)
        if halves is None:
            out.append(centre)
        else:
            out.extend(halves)
            budget -= 1
    return np.array(out) if len(out) > len(centres) else None


def _merge_close(
    points: np.ndarray, weights: np.ndarray, centres: np.ndarray, distance: float
) -> np.ndarray:
    labels, _ = _nearest(points, centres)
    mass = np.bincount(labels, weights=weights, minlength=len(centres))
    kept: list[np.ndarray] = []
    for j in sorted(range(len(centres)), key=lambda i: (-mass[i], i)):
        if mass[j] > 0 and all(np.linalg.norm(centres[j] - k) >= distance for k in kept):
            kept.append(centres[j])
    return np.array(kept)


def cluster_colours(rgb: np.ndarray, params: MaskDecodeParams, seed: int = 0) -> np.ndarray:
    """Colour centres (k, 3) float64 of a target, black included, heaviest first.

    Algorithm 2 lines 1-3 (histogram peaks -> n -> KMeans), then the split refinement, then
    centres closer than `split_distance` to a heavier one are dropped (over-clustering of
    one noisy colour), so every remaining centre stands for one colour.
    """
    points, weights = colour_bins(rgb, params.quantization)
    n = max(1, int(np.floor(np.mean(count_histogram_peaks(rgb, params)) + 0.5)))
    k = min(n, len(points), params.max_clusters)
    centres = _kmeans(points, weights, k, seed, params.n_init)
    while len(centres) < min(params.max_clusters, len(points)):
        split = _split_once(points, weights, centres, params)
        if split is None:
            break
        centres = _kmeans(points, weights, split, seed, 1)
    return _merge_close(points, weights, centres, params.split_distance)

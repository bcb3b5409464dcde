"""Composites per second per core: `make_composite` vs a bare cv2.warpAffine + blend.

Both run on the same inputs in the same process with one OpenCV thread, so the printed ratio
is the cost of the library's extras (letterbox fit, albumentations, background crop, blur and
noise, target, points) over the minimum any compositor must do. The foreground estimate is
timed once on its own: in the pipeline it is computed once per foreground and cached.

    NO_ALBUMENTATIONS_UPDATE=1 NUMBA_CACHE_DIR=.cache/numba .venv/bin/python bench/composite.py
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dicepipe.composite.foreground import estimate_foreground, quantise_foreground  # noqa: E402
from dicepipe.composite.make import make_composite  # noqa: E402
from dicepipe.params.composite import CompositeParams  # noqa: E402
from dicepipe.sources.synthetic.matting import render_matting_item  # noqa: E402


def _median_seconds(fn: Callable[[int], object], n: int) -> float:
    fn(0)  # warm-up: imports, allocations
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i + 1)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _bare(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray, size: int, i: int) -> np.ndarray:
    """The floor: one rotation+scale warp of F*alpha and alpha, one blend, one rounding."""
    m = cv2.getRotationMatrix2D((size / 2, size / 2), 10.0 + i, 0.8)
    a = alpha.astype(np.float32)
    premult = cv2.warpAffine(fg.astype(np.float32) * a[..., None], m, (size, size))
    a_out = cv2.warpAffine(a, m, (size, size))
    out = premult + (1.0 - a_out)[..., None] * bg[:size, :size].astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def main() -> None:
    """Print the per-core rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="foreground and output side")
    parser.add_argument("-n", type=int, default=10, help="timed repetitions per variant")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    size = args.size

    item = render_matting_item(np.random.default_rng(0), size)
    t0 = time.perf_counter()
    fg = quantise_foreground(estimate_foreground(item.image, item.alpha))
    t_est = time.perf_counter() - t0
    bg_rng = np.random.default_rng(1)
    bg = cv2.GaussianBlur(
        bg_rng.integers(0, 256, (size * 5 // 4, size * 3 // 2, 3), np.uint8), (0, 0), 3.0
    )
    params = CompositeParams(size=size, bg_blur_prob=0.5, bg_noise_prob=0.5)

    t_ours = _median_seconds(lambda i: make_composite(fg, item.alpha, bg, params, 0, i), args.n)
    t_bare = _median_seconds(lambda i: _bare(fg, item.alpha, bg, size, i), args.n)
    print(f"size {size}x{size}, median of {args.n}, 1 OpenCV thread")
    print(f"estimate_foreground (once per foreground, cached): {t_est:.2f} s (incl. JIT load)")
    print(f"make_composite : {1 / t_ours:7.2f} composites/s/core ({t_ours * 1e3:.1f} ms)")
    print(f"bare warp+blend: {1 / t_bare:7.2f} composites/s/core ({t_bare * 1e3:.1f} ms)")
    print(f"ratio make_composite / bare time: {t_ours / t_bare:.2f}x")


if __name__ == "__main__":
    main()

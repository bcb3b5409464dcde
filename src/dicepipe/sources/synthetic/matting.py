"""Synthetic hair-matting foregrounds, written in the P3M-10k, AM-2k and AIM-500 layouts.

Each item is a head-like soft blob with shoulders and many thin anti-aliased hair strands,
photographed in front of a flat coloured backdrop: the image is alpha*F + (1-alpha)*B, so the
backdrop colour bleeds into the hair exactly as in real matting photos and a foreground
estimator has something to remove.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# source -> (dataset folder, image folder, mask folder, stem prefix, mask storage)
CORPUS_LAYOUTS: dict[str, tuple[str, str, str, str, str]] = {
    "p3m": ("p3m10k", "train/blurred_image", "train/mask", "p", "L"),
    "am2k": ("am2k", "train/original", "train/mask", "m", "RGB"),
    "aim500": ("aim500", "original", "mask", "o", "I;16"),
}
BLEED_COLOURS = ((40, 90, 220), (40, 190, 70), (230, 60, 180), (240, 200, 40))
JPEG_QUALITY = 90


@dataclass(frozen=True)
class MattingItem:
    """One rendered foreground: photo, exact alpha, exact foreground colour, backdrop colour."""

    image: np.ndarray  # (H, W, 3) uint8, alpha*F + (1-alpha)*B
    alpha: np.ndarray  # (H, W) float32 in [0, 1]
    foreground: np.ndarray  # (H, W, 3) uint8, the true F
    bleed: tuple[int, int, int]  # the backdrop colour B


def _soft_ellipse(size: int, centre: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    import cv2

    canvas = np.zeros((size * 4, size * 4), np.uint8)
    c = (round(centre[0] * 4), round(centre[1] * 4))
    cv2.ellipse(canvas, c, (round(axes[0] * 4), round(axes[1] * 4)), 0, 0, 360, 255, -1)
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small.astype(np.float32) / 255.0, (0, 0), 0.8)


def _strand(rng: np.random.Generator, start: np.ndarray, angle: float, step: float) -> np.ndarray:
    """A smooth random walk: the turning rate itself wanders, so the curve has no kinks."""
    n = int(rng.integers(12, 40))
    turn = rng.normal(0.0, 0.008, n).cumsum() + rng.normal(0.0, 0.03)
    angles = angle + np.cumsum(turn)
    steps = np.stack([np.cos(angles), np.sin(angles)], axis=1) * step
    steps[:, 1] += np.linspace(0.0, 0.35 * step, n)  # hair falls under its weight
    return np.vstack([start, start + np.cumsum(steps, axis=0)])


def render_hair_alpha(rng: np.random.Generator, size: int) -> np.ndarray:
    """A (size, size) float32 alpha: soft head and shoulders plus thin anti-aliased strands."""
    import cv2

    cx, cy = size * (0.5 + rng.uniform(-0.05, 0.05)), size * rng.uniform(0.42, 0.48)
    ax, ay = size * rng.uniform(0.17, 0.21), size * rng.uniform(0.22, 0.26)
    body = np.maximum.reduce(
        [
            _soft_ellipse(size, (cx, cy), (ax, ay)),
            _soft_ellipse(size, (cx, cy + ay), (ax * 0.5, ay * 0.6)),  # neck
            _soft_ellipse(size, (size * 0.5, size * 1.08), (size * 0.42, size * 0.36)),
        ]
    )
    hair = np.zeros((size, size), np.uint8)
    for _ in range(int(size * 0.9)):
        theta = rng.uniform(-np.pi * 1.05, 0.05)  # the upper half of the head, and a bit more
        start = np.array([cx + 0.95 * ax * np.cos(theta), cy + 0.95 * ay * np.sin(theta)])
        line = _strand(rng, start, theta + rng.normal(0.0, 0.3), size / 110.0)
        shade = int(rng.integers(110, 256))
        cv2.polylines(
            hair, [np.round(line * 16).astype(np.int32)], False, shade, 1, cv2.LINE_AA, 4
        )  # shift=4: 1/16-pixel precision
    return np.maximum(body, hair.astype(np.float32) / 255.0)


def render_matting_item(rng: np.random.Generator, size: int) -> MattingItem:
    """Render one foreground photo with its exact alpha, foreground colour and backdrop."""
    import cv2

    alpha = render_hair_alpha(rng, size)
    hair = np.array([70, 45, 30]) + rng.integers(-25, 26, 3)
    skin = np.array([225, 180, 150]) + rng.integers(-20, 21, 3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    face = cv2.GaussianBlur(
        ((xx - 0.5) ** 2 / 0.02 + (yy - 0.5) ** 2 / 0.03 < 1).astype(np.float32), (0, 0), 2.0
    )[..., None]
    fg = face * skin + (1 - face) * hair + rng.normal(0.0, 4.0, (size, size, 3))
    fg = np.clip(np.round(fg), 0, 255).astype(np.uint8)
    bleed = BLEED_COLOURS[int(rng.integers(len(BLEED_COLOURS)))]
    shade = 1.0 - 0.15 * yy[..., None]  # a gentle backdrop gradient, like studio light
    backdrop = np.array(bleed, np.float32) * shade
    a = alpha[..., None]
    image = np.clip(np.round(a * fg + (1 - a) * backdrop), 0, 255).astype(np.uint8)
    return MattingItem(image, alpha, fg, bleed)


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """Deterministic baseline JPEG (fixed quality, no metadata)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def encode_alpha_png(alpha: np.ndarray, mode: str) -> bytes:
    """Deterministic PNG of an alpha in [0, 1] stored as 8-bit L, 8-bit RGB or 16-bit grey."""
    from PIL import Image

    if mode == "I;16":
        img = Image.fromarray(np.round(alpha * 65535).astype(np.uint16))
    else:
        img = Image.fromarray(np.round(alpha * 255).astype(np.uint8)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def _write_pair(out: Path, source: str, stem: str, image: bytes, alpha: bytes | None) -> int:
    folder, image_dir, alpha_dir, _, _ = CORPUS_LAYOUTS[source]
    n = _write(out / folder / image_dir / f"{stem}.jpg", image)
    if alpha is not None:
        n += _write(out / folder / alpha_dir / f"{stem}.png", alpha)
    return n


def write_matting_corpus(
    out_dir: Path, seed: int = 0, per_source: int = 3, size: int = 160
) -> dict:
    """Write `per_source` good foregrounds per layout under `out_dir`, plus two bad ones.

    The bad ones are `p3m/p_nomask` (an image without a mask) and `aim500/o_badsize` (a mask
    smaller than its image). Same seed, same bytes. Returns {"roots": {source: path},
    "items": {key: {"bleed": [r, g, b]}}, "bad": {key: kind}, "bytes": total written}.
    """
    out_dir = Path(out_dir)
    roots, items, total = {}, {}, 0
    for s_index, (source, (folder, *_, prefix, mode)) in enumerate(CORPUS_LAYOUTS.items()):
        roots[source] = str(out_dir / folder)
        for i in range(per_source):
            item = render_matting_item(np.random.default_rng([seed, s_index, i]), size)
            stem = f"{prefix}_{i:04d}"
            total += _write_pair(
                out_dir, source, stem, encode_jpeg(item.image), encode_alpha_png(item.alpha, mode)
            )
            items[f"{source}/{stem}"] = {"bleed": list(item.bleed)}
    bad = render_matting_item(np.random.default_rng([seed, 99]), size)
    total += _write_pair(out_dir, "p3m", "p_nomask", encode_jpeg(bad.image), None)
    small = bad.alpha[: size * 3 // 4, : size * 3 // 4]
    total += _write_pair(
        out_dir, "aim500", "o_badsize", encode_jpeg(bad.image), encode_alpha_png(small, "I;16")
    )
    return {
        "roots": roots,
        "items": items,
        "bad": {"p3m/p_nomask": "missing_alpha", "aim500/o_badsize": "size_mismatch"},
        "bytes": total,
    }

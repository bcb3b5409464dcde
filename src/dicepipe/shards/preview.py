"""Preview grids: rows of equally sized tiles, so people can look instead of read."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def fit_tile(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB (or gray) image to fit a size x size tile, centred on black."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    tile = np.zeros((size, size, 3), np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    tile[top : top + new_h, left : left + new_w] = resized
    return tile


def draw_points(rgb: np.ndarray, points: Sequence[Sequence[float]]) -> np.ndarray:
    """A copy of `rgb` with normalised (x, y) points drawn as red rings with a white centre."""
    out = np.ascontiguousarray(rgb.copy())
    height, width = out.shape[:2]
    radius = max(2, round(min(height, width) / 40))
    for x, y in points:
        centre = (int(x * width), int(y * height))
        cv2.circle(out, centre, radius + 1, (255, 0, 0), thickness=-1)
        cv2.circle(out, centre, max(1, radius // 2), (255, 255, 255), thickness=-1)
    return out


HEADER_PX = 22  # height of the band of column titles


def grid(
    rows: Sequence[Sequence[np.ndarray]],
    tile: int = 160,
    gap: int = 4,
    titles: Sequence[str] = (),
) -> np.ndarray:
    """Stack rows of images into one RGB picture, each image fitted into a square tile;
    `titles` name the columns in a band above them."""
    if not rows:
        raise ValueError("a preview grid needs at least one row")
    columns = max(len(row) for row in rows)
    if len(titles) > columns:
        raise ValueError(f"{len(titles)} titles for {columns} columns")
    band = HEADER_PX if titles else 0
    height = band + len(rows) * tile + (len(rows) - 1) * gap
    width = columns * tile + (columns - 1) * gap
    canvas = np.full((height, width, 3), 255, np.uint8)
    for c, title in enumerate(titles):
        _write_title(canvas, title, c * (tile + gap), tile)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = band + r * (tile + gap), c * (tile + gap)
            canvas[top : top + tile, left : left + tile] = fit_tile(image, tile)
    return canvas


def _write_title(canvas: np.ndarray, text: str, left: int, width: int) -> None:
    """`text` centred in the header band over the column starting at `left` (shrunk to fit)."""
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    (text_w, text_h), _ = cv2.getTextSize(text, font, scale, thickness)
    if text_w > width - 4:
        scale *= (width - 4) / text_w
        (text_w, text_h), _ = cv2.getTextSize(text, font, scale, thickness)
    origin = (left + (width - text_w) // 2, (HEADER_PX + text_h) // 2)
    cv2.putText(canvas, text, origin, font, scale, (0, 0, 0), thickness, cv2.LINE_AA)

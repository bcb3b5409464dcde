"""Tiny benchmark archives written by the tests, in the public layouts."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(array: np.ndarray) -> bytes:
    """PNG encoding of a uint8 (H, W, 3) or uint16 (H, W) array."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def jpg_bytes(array: np.ndarray) -> bytes:
    """High-quality JPEG encoding of a uint8 (H, W, 3) array."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=98)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    """.npy encoding of an array."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def gradient_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth uint8 image (compresses well, survives JPEG nearly unchanged)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack(
        [
            (rows * 255 // max(height - 1, 1)),
            (cols * 255 // max(width - 1, 1)),
            np.full_like(rows, 40 * seed % 256),
        ],
        axis=-1,
    ).astype(np.uint8)


def write_archive(
    root: Path, members: dict[str, bytes], kind: str, dot_prefix: bool = True
) -> Path:
    """Write `members` as a folder, tar (members "./<path>" as Marigold's tars, or bare) or zip
    at `root`; returns its path."""
    if kind == "folder":
        for name, data in members.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        return root
    if kind == "tar":
        path = root.with_suffix(".tar")
        with tarfile.open(path, "w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(("./" if dot_prefix else "") + name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path
    if kind == "zip":
        path = root.with_suffix(".zip")
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        return path
    raise ValueError(kind)


def write_split(path: Path, lines: list[str]) -> Path:
    """A split file: one line of space-separated relative paths per sample."""
    path.write_text("\n".join(lines) + "\n")
    return path

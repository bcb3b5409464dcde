"""Hand-made bad files: images with crafted EXIF, tars with odd members, RLE helpers.

Shared by the per-fault tests and the bad-input corpus (`tests/reliability/corpus.py`).
"""

from __future__ import annotations

import io
import struct
import tarfile

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from dicepipe.imageio import encode_jpeg

EXIF_ORIENTATION, EXIF_IFD, FOCAL_35MM = 0x0112, 0x8769, 0xA405
SHORT, ASCII, LONG, RATIONAL = 3, 2, 4, 5


def picture(seed: int, height: int = 24, width: int = 32) -> np.ndarray:
    """A small deterministic RGB picture with structure (gradients plus noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 5 + seed, yy * 7, (xx + yy) * 3], axis=2) + rng.integers(0, 30, (1, 1, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def jpeg(seed: int, height: int = 24, width: int = 32) -> bytes:
    return encode_jpeg(picture(seed, height, width))


def _entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
    """One little-endian IFD entry whose value fits its 4 bytes."""
    return struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")


def raw_exif(entries: list[bytes], sub_entries: list[bytes] | None = None) -> bytes:
    """An APP1 EXIF block ("Exif\\0\\0" + TIFF) of raw entries; `sub_entries` go in an Exif
    sub-IFD (where FocalLengthIn35mmFilm lives)."""
    entries = list(entries)
    if sub_entries is not None:
        sub_offset = 8 + 2 + 12 * (len(entries) + 1) + 4
        entries.append(_entry(EXIF_IFD, LONG, 1, struct.pack("<I", sub_offset)))
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    tiff = b"II*\0" + struct.pack("<I", 8) + ifd
    if sub_entries is not None:
        tiff += struct.pack("<H", len(sub_entries)) + b"".join(sub_entries) + b"\0\0\0\0"
    return b"Exif\0\0" + tiff


def orientation_entry(kind: int, count: int, value: bytes) -> bytes:
    return _entry(EXIF_ORIENTATION, kind, count, value)


def focal_entry(f35: int) -> bytes:
    return _entry(FOCAL_35MM, SHORT, 1, struct.pack("<H", f35))


def jpeg_with_exif(rgb: np.ndarray, exif: bytes, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", exif=exif, quality=95, **save)
    return buffer.getvalue()


def text_orientation_jpeg(seed: int = 0, f35: int | None = None) -> bytes:
    """A JPEG whose Orientation tag is the ASCII string "abc" (Pillow reads a str)."""
    sub = [focal_entry(f35)] if f35 else None
    exif = raw_exif([orientation_entry(ASCII, 4, b"abc\0")], sub)
    return jpeg_with_exif(picture(seed), exif)


def rotated_jpeg(seed: int = 0, orientation: int = 6, f35: int | None = None) -> bytes:
    """A JPEG with a valid EXIF rotation (and optionally a 35 mm focal length)."""
    sub = [focal_entry(f35)] if f35 else None
    exif = raw_exif([orientation_entry(SHORT, 1, struct.pack("<H", orientation))], sub)
    return jpeg_with_exif(picture(seed), exif)


def rle(mask: np.ndarray) -> dict:
    """COCO RLE (compressed, counts as str) of a boolean mask."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode()}


def uncompressed_counts(mask: np.ndarray) -> list[int]:
    """The run lengths of a mask (column-major, background first): uncompressed RLE counts."""
    flat = mask.T.reshape(-1).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0, *runs]


def box(height: int, width: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def deep_json(depth: int = 100_000) -> bytes:
    """A JSON document nested far deeper than Python's recursion limit."""
    return b'{"annotations": ' + b"[" * depth + b"]" * depth + b"}"


def add_member(archive: tarfile.TarFile, name: str, data: bytes = b"", **kind) -> None:
    """Add one member; `kind` sets TarInfo fields (type=tarfile.SYMTYPE, linkname=...)."""
    info = tarfile.TarInfo(name)
    info.size = len(data) if not kind else 0
    for field, value in kind.items():
        setattr(info, field, value)
    archive.addfile(info, io.BytesIO(data) if not kind else None)

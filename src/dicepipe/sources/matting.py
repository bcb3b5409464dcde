"""Readers for the published hair-matting layouts: P3M-10k, AM-2k and AIM-500.

Every image or mask found becomes one `Foreground`, paired by file stem. A pair with a side
missing is still yielded, with `problem` set, so that `decode_foreground` raises
`BadForeground` for it exactly as for a corrupt or empty mask: callers handle one exception
type and write one quarantine row per bad item.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from dicepipe.records import ItemError

# source -> (image folder, mask folder), relative to the dataset root
LAYOUTS: dict[str, tuple[str, str]] = {
    "p3m": ("train/blurred_image", "train/mask"),
    "am2k": ("train/original", "train/mask"),
    "aim500": ("original", "mask"),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg")
ALPHA_SUFFIXES = (".png",)
EMPTY_ALPHA_EPS = 1e-3
MAX_PIXELS = 100_000_000
Root = str | os.PathLike[str]  # a local folder or any fsspec URL (file://, s3://, memory://)


class BadForeground(ItemError):
    """A foreground that cannot be used: an item error whose `message` is `"<kind>: <detail>"`
    and whose quarantine `reason` is the kind (also `kind`).

    Kinds: missing_alpha, missing_image, unreadable_image, unreadable_alpha, too_large,
    size_mismatch, empty_alpha.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message.split(":", 1)[0], message)

    @property
    def kind(self) -> str:
        """The kind of fault: the quarantine reason."""
        return self.reason

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (BadForeground, (self.message,))


@dataclass(frozen=True)
class ForegroundRef:
    """Where one foreground's files are; `None` for a side that is missing."""

    key: str
    source: str
    stem: str
    image_path: str | None
    alpha_path: str | None


@dataclass(frozen=True)
class Foreground:
    """One matting foreground as stored: raw file bytes, not decoded yet.

    `problem` is set (and the missing side's bytes are empty) when the pair is incomplete.
    """

    key: str
    source: str
    stem: str
    image_bytes: bytes
    alpha_bytes: bytes
    problem: str | None = None


def _open_fs(root: Root, storage_options: dict | None) -> tuple[Any, str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(root), **(storage_options or {}))
    return fs, path.rstrip("/")


def _stems(fs: Any, folder: str, suffixes: tuple[str, ...]) -> dict[str, str]:
    if not fs.isdir(folder):
        raise FileNotFoundError(f"matting layout folder not found: {folder}")
    found: dict[str, str] = {}
    for path in sorted(fs.ls(folder, detail=False)):
        name = PurePosixPath(path)
        if name.suffix.lower() in suffixes:
            found.setdefault(name.stem, path)
    return found


def list_foregrounds(
    root: Root, source: str, storage_options: dict | None = None
) -> list[ForegroundRef]:
    """List the pairs of a dataset root (local path or fsspec URL), sorted by stem.

    Reads no file contents, so a flow can shard the list by key before any I/O.
    Raises FileNotFoundError when the layout's image or mask folder is absent.
    """
    if source not in LAYOUTS:
        raise ValueError(f"unknown matting source {source!r}; expected one of {sorted(LAYOUTS)}")
    fs, base = _open_fs(root, storage_options)
    image_dir, alpha_dir = LAYOUTS[source]
    images = _stems(fs, f"{base}/{image_dir}", IMAGE_SUFFIXES)
    alphas = _stems(fs, f"{base}/{alpha_dir}", ALPHA_SUFFIXES)
    return [
        ForegroundRef(f"{source}/{stem}", source, stem, images.get(stem), alphas.get(stem))
        for stem in sorted(images.keys() | alphas.keys())
    ]


def read_foreground(
    ref: ForegroundRef, root: Root, storage_options: dict | None = None
) -> Foreground:
    """Read the bytes of one listed pair; a missing side, or one that cannot be read (a
    folder, a dangling link, no permission), becomes `problem`."""
    fs, _ = _open_fs(root, storage_options)
    image, image_problem = _read_side(fs, ref.image_path, "image")
    alpha, alpha_problem = _read_side(fs, ref.alpha_path, "alpha")
    problem = image_problem or alpha_problem
    if ref.image_path is None:
        problem = f"missing_image: no image for mask {PurePosixPath(ref.alpha_path).name}"
    elif ref.alpha_path is None:
        problem = f"missing_alpha: no mask for image {PurePosixPath(ref.image_path).name}"
    return Foreground(ref.key, ref.source, ref.stem, image, alpha, problem)


def _read_side(fs: Any, path: str | None, kind: str) -> tuple[bytes, str | None]:
    """The bytes of one side of a pair, or the `unreadable_<kind>` problem."""
    if path is None:
        return b"", None
    try:
        return fs.cat_file(path), None
    except OSError as error:  # a folder named like an image, a dangling link, no permission
        return b"", f"unreadable_{kind}: {PurePosixPath(path).name}: {type(error).__name__}"


def iter_foregrounds(
    root: Root,
    source: str,
    storage_options: dict | None = None,
    keys: Iterable[str] | None = None,
) -> Iterator[Foreground]:
    """Yield the foregrounds of one dataset root lazily, sorted by stem.

    `keys`, when given, restricts the output to those item keys (one shard's worth).
    """
    wanted = None if keys is None else set(keys)
    for ref in list_foregrounds(root, source, storage_options):
        if wanted is None or ref.key in wanted:
            yield read_foreground(ref, root, storage_options)


def _open_image(data: bytes, kind: str, max_pixels: int) -> Any:
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
    except Exception as exc:  # PIL raises many types for garbage input
        raise BadForeground(f"unreadable_{kind}: {type(exc).__name__}: {exc}") from exc
    if img.width * img.height > max_pixels:
        raise BadForeground(f"too_large: {kind} is {img.width}x{img.height} > {max_pixels} px")
    return img


def _load(img: Any, kind: str) -> Any:
    try:
        img.load()
    except Exception as exc:
        raise BadForeground(f"unreadable_{kind}: {type(exc).__name__}: {exc}") from exc
    return img


def _alpha_array(img: Any) -> np.ndarray:
    """One channel in [0, 1] from a mask of any PIL mode (8 or 16 bit)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.clip(np.asarray(img, dtype=np.float32) / 65535.0, 0.0, 1.0)
    if mode == "F":
        return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    if mode in ("1", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGBA" if "A" in mode or "transparency" in img.info else "L")
    arr = np.asarray(img)
    if arr.ndim == 2:
        return arr.astype(np.float32) / 255.0
    first = arr[..., 0]
    # A grey mask saved as RGBA keeps it in the colour bands; a cut-out keeps it in A only.
    if arr.shape[-1] in (2, 4) and first.min() == first.max() and arr[..., -1].min() < 255:
        first = arr[..., -1]
    return first.astype(np.float32) / 255.0


def decode_foreground(
    fg: Foreground, eps: float = EMPTY_ALPHA_EPS, max_pixels: int = MAX_PIXELS
) -> tuple[np.ndarray, np.ndarray]:
    """Decode to (RGB uint8 HxWx3, alpha float32 HxW in [0, 1]); raise BadForeground if unusable.

    Pixels are taken in stored order (no EXIF rotation), the order the masks are drawn in.
    """
    if fg.problem:
        raise BadForeground(fg.problem)
    image = _open_image(fg.image_bytes, "image", max_pixels)
    alpha_img = _open_image(fg.alpha_bytes, "alpha", max_pixels)
    if image.size != alpha_img.size:
        raise BadForeground(
            f"size_mismatch: alpha {alpha_img.width}x{alpha_img.height}"
            f" vs image {image.width}x{image.height}"
        )
    rgb = np.ascontiguousarray(np.asarray(_load(image, "image").convert("RGB")))
    alpha = _alpha_array(_load(alpha_img, "alpha"))
    if not float(alpha.max()) >= eps:
        raise BadForeground(f"empty_alpha: max alpha {float(alpha.max()):.4g} < {eps}")
    return rgb, np.ascontiguousarray(alpha, dtype=np.float32)

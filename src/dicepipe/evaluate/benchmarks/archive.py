"""Read benchmark members in place from a folder, a tar or a zip archive, and decode them.

Marigold's evaluation datasets read their tars the same way (`tarfile.extractfile` of
"./" + the split file's relative path); members here may be stored with or without "./".
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
from PIL import Image, UnidentifiedImageError

from dicepipe.evaluate.benchmarks.sample import BenchmarkReadError

_DEPTH_PNG_MODES = ("I;16", "I;16B", "I;16L", "I")


class Archive:
    """A benchmark folder, tar or zip, opened for reading members by relative path."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._tar: tarfile.TarFile | None = None
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}
        if self.path.is_dir():
            return
        if not self.path.is_file():
            raise BenchmarkReadError(f"{self.path}: no such benchmark folder or archive")
        try:
            if zipfile.is_zipfile(self.path):
                self._zip = zipfile.ZipFile(self.path)
                names = self._zip.namelist()
            elif tarfile.is_tarfile(self.path):
                self._tar = tarfile.open(self.path)  # noqa: SIM115 (closed by Archive.close)
                names = [m.name for m in self._tar.getmembers() if m.isfile()]
            else:
                raise BenchmarkReadError(f"{self.path}: not a folder, tar or zip archive")
        except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
            self.close()
            raise BenchmarkReadError(f"{self.path}: unreadable archive: {error}") from None
        self._members = {_normalised(name): name for name in names}

    def read(self, member: str) -> bytes:
        """The bytes of `member` (a relative path); a missing or unreadable member is a
        BenchmarkReadError naming the archive and the member."""
        name = _normalised(member)
        if not name or name.startswith("../") or posixpath.isabs(member):
            raise BenchmarkReadError(f"{self.path}: bad member path {member!r}")
        try:
            if self._tar is not None or self._zip is not None:
                stored = self._members.get(name)
                if stored is None:
                    raise BenchmarkReadError(f"{self.path}: no member {member!r}")
                if self._zip is not None:
                    return self._zip.read(stored)
                handle = self._tar.extractfile(stored)  # type: ignore[union-attr]
                if handle is None:
                    raise BenchmarkReadError(f"{self.path}: member {member!r} is not a file")
                return handle.read()
            return (self.path / name).read_bytes()
        except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
            raise BenchmarkReadError(f"{self.path}: cannot read {member!r}: {error}") from None

    def close(self) -> None:
        """Close the underlying archive file, if any."""
        for handle in (self._tar, self._zip):
            if handle is not None:
                handle.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def read_split(split_file: str | Path, columns: int) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line of a Marigold-style split file (relative
    paths separated by whitespace); a line with fewer than `columns` fields is an error."""
    path = Path(split_file)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise BenchmarkReadError(f"{path}: cannot read the split file: {error}") from None
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < columns:
            raise BenchmarkReadError(f"{path}:{number}: expected {columns} fields, got {line!r}")
        yield number, fields


def decode_rgb(data: bytes, member: str) -> np.ndarray:
    """A PNG or JPEG member as uint8 (H, W, 3) RGB."""
    image = _open_image(data, member)
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "CMYK", "YCbCr"):
        raise BenchmarkReadError(f"{member}: not an 8-bit colour image (mode {image.mode})")
    return np.asarray(image.convert("RGB"), np.uint8)


def decode_depth_png(data: bytes, member: str) -> np.ndarray:
    """A single-channel 16-bit PNG member as a 2-D integer array (the raw stored values)."""
    image = _open_image(data, member)
    if image.mode not in _DEPTH_PNG_MODES:
        raise BenchmarkReadError(f"{member}: not a 16-bit single-channel PNG (mode {image.mode})")
    return np.asarray(image)


def decode_npy(data: bytes, member: str) -> np.ndarray:
    """A .npy member as an array (no pickles)."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise BenchmarkReadError(f"{member}: not a readable .npy array: {error}") from None


def check_shape(array: np.ndarray, shape: tuple[int, ...] | None, member: str, what: str) -> None:
    """`array.shape` equals `shape` (when given), else a BenchmarkReadError naming `member`."""
    if shape is not None and array.shape != tuple(shape):
        raise BenchmarkReadError(f"{member}: {what} has shape {array.shape}, expected {shape}")


def _open_image(data: bytes, member: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise BenchmarkReadError(f"{member}: not a readable image: {error}") from None
    return image


def _normalised(name: str) -> str:
    name = posixpath.normpath(name.replace("\\", "/")) if name else ""
    return "" if name == "." else name.removeprefix("./")

"""A local filesystem under `counting://` that counts what is read through it, to prove a
plan reads no input bytes (as object storage would bill them)."""

from __future__ import annotations

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractBufferedFile


class CountingFileSystem(LocalFileSystem):
    """LocalFileSystem that records the bytes read from every opened file, by path."""

    protocol = "counting"
    read: dict[str, int] = {}

    def _open(self, path, mode="rb", **kwargs):
        handle = super()._open(path, mode, **kwargs)
        plain = handle.read
        name = self._strip_protocol(path)

        def counted(*args):
            data = plain(*args)
            CountingFileSystem.read[name] = CountingFileSystem.read.get(name, 0) + len(data)
            return data

        handle.read = counted
        return handle

    @classmethod
    def reset(cls) -> None:
        """Forget what was read."""
        cls.read = {}

    @classmethod
    def total(cls, suffix: str = "") -> int:
        """Bytes read from files whose path ends with `suffix`."""
        return sum(n for path, n in cls.read.items() if path.endswith(suffix))


def register() -> type[CountingFileSystem]:
    """Register the filesystem for `counting://` URLs, with counts reset."""
    fsspec.register_implementation("counting", CountingFileSystem, clobber=True)
    CountingFileSystem.reset()
    return CountingFileSystem


class RangeFileSystem(LocalFileSystem):
    """Local files read as object storage serves them (`ranges://`): through fsspec's
    buffered file, each cache miss a ranged GET of at least `block_size` bytes (5 MB by
    default, like s3fs), with the bytes fetched counted."""

    protocol = "ranges"
    fetched = [0]

    def _open(self, path, mode="rb", block_size="default", cache_type="readahead", **kwargs):
        return _RangeFile(self, path, mode, block_size=block_size, cache_type=cache_type)


class _RangeFile(AbstractBufferedFile):
    def _fetch_range(self, start: int, end: int) -> bytes:
        with open(self.path, "rb") as handle:
            handle.seek(start)
            data = handle.read(end - start)
        RangeFileSystem.fetched[0] += len(data)
        return data


def register_ranges() -> type[RangeFileSystem]:
    """Register the filesystem for `ranges://` URLs, with the count reset."""
    fsspec.register_implementation("ranges", RangeFileSystem, clobber=True)
    RangeFileSystem.fetched[0] = 0
    return RangeFileSystem

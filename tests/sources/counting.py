"""A local filesystem under `counting://` that counts what is read through it, to prove a
plan reads no input bytes (as object storage would bill them)."""

from __future__ import annotations

import fsspec
from fsspec.implementations.local import LocalFileSystem


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

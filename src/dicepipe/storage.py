"""Atomic file writes, content hashes and small Parquet helpers shared by every stage."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

FINGERPRINT_KEY = b"dicepipe.fingerprint"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; on success it is synced and renamed into
    place, on any failure removed. A killed process leaves the old file or none, never a
    partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the usual mode
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_temporaries(folder: str | Path, name: str = "*") -> list[Path]:
    """Delete the temporary files of `atomic_path` (`.<name>.<random>.tmp`) anywhere under
    `folder`, of the target file `name` (a glob; default: every file): a SIGKILL leaves them
    behind. Only where no process is writing such a file; the paths removed."""
    leftovers = sorted(Path(folder).rglob(f".{name}.*.tmp")) if Path(folder).is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a file object for a temporary file, then rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write(handle)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically, with sorted keys so equal data gives equal bytes."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))


def write_parquet(
    path: str | Path, table: pa.Table, fingerprint: str | None = None, **options: Any
) -> None:
    """Write a Parquet file atomically; `fingerprint` goes in the schema metadata."""
    if fingerprint is not None:
        metadata = dict(table.schema.metadata or {})
        metadata[FINGERPRINT_KEY] = fingerprint.encode()
        table = table.replace_schema_metadata(metadata)
    options.setdefault("compression", "zstd")
    with atomic_path(path) as tmp:
        # A path (not a Python file object) lets Arrow write natively: about twice as fast
        # for large binary columns.
        pq.write_table(table, str(tmp), **options)


def read_fingerprint(path: str | Path) -> str | None:
    """The fingerprint stored by `write_parquet`, or None if the file is absent or unreadable."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = metadata.get(FINGERPRINT_KEY)
    return value.decode() if value is not None else None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def digest_of(*parts: Any) -> str:
    """A short stable digest of JSON-serialisable parts (params, identities, versions)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} from a safetensors file's header, after checking that the file is
    whole (its tensor data ends exactly at its end); ValueError saying what is wrong otherwise.
    Reads the header only, so it is safe on any file before a native loader sees it."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        start = handle.read(8)
        length = struct.unpack("<Q", start)[0] if len(start) == 8 else 0
        if not 2 <= length <= min(SAFETENSORS_MAX_HEADER, size - 8):
            raise ValueError(f"{size} bytes, truncated or not safetensors")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{size} bytes, unreadable safetensors header ({error})") from None
    try:
        tensors = {k: v for k, v in header.items() if k != "__metadata__"}
        end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
        shapes = {k: tuple(int(d) for d in v["shape"]) for k, v in tensors.items()}
    except (AttributeError, KeyError, TypeError, IndexError, ValueError):
        raise ValueError("not a safetensors file (bad header)") from None
    if 8 + length + end != size:
        described = 8 + length + end
        raise ValueError(
            f"{size} bytes, its header describes another size ({described}): truncated"
        )
    return shapes

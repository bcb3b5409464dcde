"""Atomic file writes, content hashes and small Parquet helpers shared by every stage.

Every output location may be a local path or an fsspec URL (`s3://bucket/work`, `gs://...`):
`location` turns either into a path object (`pathlib.Path`, or a `upath.UPath` over fsspec
with the same `/`, `glob`, `exists`, `open`, `stem` API), and the writers here are atomic on
both. Locally a file is written under a temporary name, synced and renamed; on an object store
it is written to a local temporary file and uploaded in one PUT (or one multipart upload),
which readers see whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

FINGERPRINT_KEY = b"dicepipe.fingerprint"
_UMASK = os.umask(0)
os.umask(_UMASK)


Location = Path | UPath  # a local path or an fsspec URL's path object
LOCAL_PROTOCOLS = ("", "file", "local")


def location(where: str | Path | UPath) -> Location:
    """`where` as a path object: a `Path` for a local path (or `file://` URL), a `UPath` for any
    other fsspec URL (its storage options come from fsspec's configuration, e.g. the
    `FSSPEC_S3_ENDPOINT_URL` environment variable, so every worker process finds the same
    store)."""
    if isinstance(where, Path):
        return where
    if isinstance(where, UPath):
        return where if is_remote(where) else Path(where.path)
    text = str(where)
    if "://" not in text or text.startswith("file://"):
        return Path(text.removeprefix("file://"))
    return UPath(text)


def is_remote(path: str | Path | UPath) -> bool:
    """True for a location on an fsspec filesystem other than the local one."""
    if isinstance(path, str):
        path = location(path)
    return isinstance(path, UPath) and path.protocol not in LOCAL_PROTOCOLS


def listing(folder: Location, pattern: str) -> list[Location]:
    """The files of `folder` matching `pattern`, sorted by name; none when it does not exist.
    On an object store the listing is read fresh (s3fs keeps listings for the life of its
    filesystem object, and other processes write here)."""
    if is_remote(folder):
        folder.fs.invalidate_cache(folder.path)
        found = folder.fs.glob(f"{folder.path.rstrip('/')}/{pattern}")
        return sorted((folder / PurePosixPath(p).name for p in found), key=str)
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


@contextmanager
def atomic_path(path: str | Path | UPath) -> Iterator[Path]:
    """A local temporary path to write to; on success it is synced and renamed into place (or
    uploaded in one put to a remote location), on any failure removed. A killed process leaves
    the old file or none, never a partial one."""
    path = location(path)
    if is_remote(path):
        with _uploaded(path) as tmp:
            yield tmp
        return
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


@contextmanager
def _uploaded(path: UPath) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        path.fs.put_file(str(tmp), path.path)
        path.fs.invalidate_cache(path.parent.path)
    finally:
        tmp.unlink(missing_ok=True)


def put_file(local: Path, dest: str | Path | UPath) -> None:
    """Copy a local file to `dest` (a path or URL) atomically: one upload to a remote store,
    a temporary copy renamed into place locally."""
    dest = location(dest)
    if is_remote(dest):
        dest.fs.put_file(str(local), dest.path)
        dest.fs.invalidate_cache(dest.parent.path)
        return
    with atomic_path(dest) as tmp:
        shutil.copyfile(local, tmp)


def remove_temporaries(folder: str | Path | UPath, name: str = "*") -> list[Path]:
    """Delete the temporary files of `atomic_path` (`.<name>.<random>.tmp`) anywhere under
    `folder`, of the target file `name` (a glob; default: every file): a SIGKILL leaves them
    behind. Only where no process is writing such a file; the paths removed. A remote folder
    has none (its temporaries are local files, removed with the writing process's)."""
    if is_remote(folder):
        return []
    leftovers = sorted(Path(folder).rglob(f".{name}.*.tmp")) if Path(folder).is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def atomic_write(path: str | Path | UPath, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a file object for a temporary file, then rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write(handle)


def write_json(path: str | Path | UPath, data: Any) -> None:
    """Write JSON atomically, with sorted keys so equal data gives equal bytes."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))


def write_parquet(
    path: str | Path | UPath, table: pa.Table, fingerprint: str | None = None, **options: Any
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


def _arrow(path: str | Path | UPath) -> tuple[str, Any]:
    """(path, filesystem) for pyarrow's readers: the fsspec filesystem of a remote location
    (pyarrow wraps it), none for a local path."""
    path = location(path)
    return (path.path, path.fs) if is_remote(path) else (str(path), None)


def read_table(path: str | Path | UPath, **options: Any) -> pa.Table:
    """`pq.read_table` of a local or remote Parquet file."""
    where, filesystem = _arrow(path)
    return pq.read_table(where, filesystem=filesystem, **options)


def parquet_file(path: str | Path | UPath, **options: Any) -> pq.ParquetFile:
    """`pq.ParquetFile` of a local or remote Parquet file (row groups read on demand)."""
    where, filesystem = _arrow(path)
    return pq.ParquetFile(where, filesystem=filesystem, **options)


def read_metadata(path: str | Path | UPath) -> pq.FileMetaData:
    """The footer of a local or remote Parquet file (row counts, row groups)."""
    where, filesystem = _arrow(path)
    return pq.read_metadata(where, filesystem=filesystem)


def read_schema(path: str | Path | UPath) -> pa.Schema:
    """The schema (with its metadata) of a local or remote Parquet file."""
    where, filesystem = _arrow(path)
    return pq.read_schema(where, filesystem=filesystem)


def read_fingerprint(path: str | Path | UPath) -> str | None:
    """The fingerprint stored by `write_parquet`, or None if the file is absent or unreadable."""
    try:
        metadata = read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = metadata.get(FINGERPRINT_KEY)
    return value.decode() if value is not None else None


def sha256_file(path: str | Path | UPath, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (local or remote), read in chunks."""
    digest = hashlib.sha256()
    with location(path).open("rb") as handle:
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

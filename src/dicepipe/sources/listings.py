"""Listings of input files written once and read back by later plans, keyed by the file's
identity as its filesystem reports it (size plus ETag, or modification time), never by its
bytes: a second plan of 1000 SA-1B tars asks each for `info()` and reads no tar byte.

A listing is JSON at `<folder>/<prefix>-<identity digest>.json`, written atomically; a file
that changes (new size, ETag or mtime) gets a new identity, so a stale listing is never read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec

from dicepipe.storage import Location, digest_of, write_json

THREADS = 16  # listings and info() calls are I/O bound: object storage answers in parallel
_VERSION_FIELDS = ("ETag", "etag", "e_tag", "md5Hash", "generation", "version_id")
_TIME_FIELDS = ("mtime", "LastModified", "last_modified", "updated", "created")


def file_identity(url: str) -> dict[str, Any]:
    """What identifies a file's content without reading it: its URL, size and the first of
    ETag/generation/version or modification time that its filesystem's `info()` reports."""
    fs, path = fsspec.core.url_to_fs(url)
    info = fs.info(path)
    identity: dict[str, Any] = {"url": url, "size": info.get("size")}
    for name in _VERSION_FIELDS + _TIME_FIELDS:
        if info.get(name) is not None:
            identity[name] = str(info[name])
            break
    return identity


def cached_listing(
    url: str, folder: Location, prefix: str, make: Callable[[str], tuple[dict[str, Any], bool]]
) -> dict[str, Any]:
    """The listing of `url` from `folder` when one of its current identity is there; else
    `make(url)` -> (listing, keep): written to `folder` when `keep` (a listing cut short by
    a read error is not kept, so a transient fault is not remembered)."""
    path = folder / f"{prefix}-{digest_of(file_identity(url))}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):  # absent, or not a listing: make it again
        pass
    listing, keep = make(url)
    if keep:
        write_json(path, listing)
    return listing


def parallel_map(function: Callable[[str], Any], urls: list[str]) -> list[Any]:
    """`[function(url) for url in urls]`, run in a thread pool (same order)."""
    if len(urls) < 2:
        return [function(url) for url in urls]
    with ThreadPoolExecutor(max_workers=min(THREADS, len(urls))) as pool:
        return list(pool.map(function, urls))

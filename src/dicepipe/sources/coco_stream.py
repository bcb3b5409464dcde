"""Streaming reads of COCO-format annotation files (COCO-Rem, EntityV2: hundreds of MB).

One read of the file feeds three ijson parsers (images, annotations, categories), each
handing one record at a time to a callback, and a sha256 of the bytes; memory is one record
plus what the callbacks keep. Every chunk is sanitised before ijson sees it (`JsonSanitizer`):
a nesting-depth limit (ijson keeps a prefix string per nesting level, so a hostile file of
100,000 nested arrays would need tens of GB) and NaN / Infinity tokens made null.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import fsspec
import numpy as np

CHUNK_BYTES = 1 << 18  # the sanitiser's numpy temporaries are ~12 bytes per byte
MAX_DEPTH = 32  # COCO nests 5 deep (annotations.item.segmentation.item.item)
RECORD_LISTS = ("images", "annotations", "categories")

OnRecord = Callable[[int, Any], None]  # (position in its list, the parsed record)


class NestingError(ValueError):
    """A JSON stream nests deeper than the sanitiser's limit."""


class JsonSanitizer:
    """Prepares a JSON byte stream for yajl, chunk by chunk.

    It stops past `limit` nesting levels, and turns Python's non-standard number tokens NaN,
    Infinity and -Infinity (which `json.dump` writes and yajl rejects, failing the whole file)
    into null outside strings, so that only the record holding one is rejected, by the
    record's own checks. Each chunk is cut after its last structural character outside a
    string and the rest carried over, so no token straddles two chunks.
    """

    def __init__(self, limit: int = MAX_DEPTH) -> None:
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.trailing_backslashes = 0  # run of backslashes ending what was scanned
        self.carry = b""

    def feed(self, chunk: bytes) -> bytes:
        """The bytes of `self.carry + chunk` up to its last structural character, sanitised."""
        data = self.carry + chunk
        inside = self._inside_strings(data)
        structural = np.isin(np.frombuffer(data, np.uint8), _STRUCTURAL) & ~inside
        ends = np.flatnonzero(structural)
        if not len(ends):
            self.carry = data
            return b""
        cut = int(ends[-1]) + 1
        self.carry = data[cut:]
        return self._emit(data[:cut], inside[:cut])

    def finish(self) -> bytes:
        """What is left after the last chunk, sanitised."""
        data, self.carry = self.carry, b""
        return self._emit(data, self._inside_strings(data)) if data else b""

    def _inside_strings(self, data: bytes) -> np.ndarray:
        """Which bytes of `data` lie inside a string (quotes included: one side), from the
        state at its start; the state itself is advanced only by `_emit`."""
        codes = np.frombuffer(data, np.uint8)
        backslash = codes == ord("\\")
        quote = codes == ord('"')
        if self.trailing_backslashes or backslash.any():
            positions = np.arange(len(codes), dtype=np.int32)
            # last non-backslash index at or before each position (a carried run: before 0)
            last_plain = np.maximum.accumulate(
                np.where(backslash, -1 - self.trailing_backslashes, positions)
            )
            run_before = np.empty(len(codes), np.int32)
            run_before[:1] = self.trailing_backslashes
            run_before[1:] = positions[:-1] - last_plain[:-1]
            quote &= run_before % 2 == 0
        inside = np.bitwise_xor.accumulate(quote) ^ quote  # odd number of quotes before
        return ~inside if self.in_string else inside

    def _emit(self, data: bytes, inside: np.ndarray) -> bytes:
        codes = np.frombuffer(data, np.uint8)
        steps = (codes == ord("[")).view(np.int8) + (codes == ord("{")).view(np.int8)
        steps -= (codes == ord("]")).view(np.int8) + (codes == ord("}")).view(np.int8)
        steps[inside] = 0
        depth = self.depth + np.cumsum(steps, dtype=np.int32)
        if int(depth.max()) > self.limit:
            raise NestingError(f"JSON nested more than {self.limit} levels deep")
        self.depth = int(depth[-1])
        # what is emitted ends on a structural character outside strings (or the file ends)
        self.in_string, self.trailing_backslashes = False, 0
        return _NON_FINITE.sub(lambda m: _null_outside(m, inside), data)


_STRUCTURAL = np.frombuffer(b",:[]{}", np.uint8)
_NON_FINITE = re.compile(rb"-?Infinity|NaN")


def _null_outside(match: re.Match[bytes], inside: np.ndarray) -> bytes:
    return match.group() if inside[match.start()] else b"null"


class _Records:
    """An ijson target: numbers the records of one list and hands each to a callback."""

    def __init__(self, callback: OnRecord) -> None:
        self.callback = callback
        self.count = 0

    def send(self, record: Any) -> None:
        self.callback(self.count, record)
        self.count += 1


def stream_coco(url: str, callbacks: dict[str, OnRecord]) -> tuple[str, dict[str, int]]:
    """Parse the annotations file at `url` (path or fsspec URL) once, calling
    `callbacks[name](position, record)` for every record of the top-level lists `images`,
    `annotations` and `categories` that have a callback. Returns the file's sha256 and the
    number of records of each list. A file that is not JSON, or nests too deeply, is a
    ValueError naming it."""
    import ijson

    targets = {name: _Records(callbacks[name]) for name in RECORD_LISTS if name in callbacks}
    parsers = [
        ijson.items_coro(target, f"{name}.item", use_float=True) for name, target in targets.items()
    ]
    sanitizer, digest = JsonSanitizer(), hashlib.sha256()

    def send(data: bytes) -> None:
        if not data:
            return  # an empty chunk would end ijson's parse
        for parser in parsers:
            parser.send(data)

    try:
        with fsspec.open(url, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
                send(sanitizer.feed(chunk))
            send(sanitizer.finish())
        for parser in parsers:
            parser.close()
    except NestingError as error:
        raise ValueError(f"{url}: {error}") from None
    except ijson.JSONError as error:
        raise ValueError(f"{url}: not a COCO annotations file: {error}") from None
    return digest.hexdigest(), {name: target.count for name, target in targets.items()}

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

CHUNK_BYTES = 1 << 20  # numpy temporaries of a few bytes per byte: a few MB
MAX_DEPTH = 32  # COCO nests 5 deep (annotations.item.segmentation.item.item)
RECORD_LISTS = ("images", "annotations", "categories")

OnRecord = Callable[[int, Any], None]  # (position in its list, the parsed record)


class NestingError(ValueError):
    """A JSON stream nests deeper than the sanitiser's limit."""


class JsonSanitizer:
    """Prepares a JSON byte stream for yajl, chunk by chunk, in one pass over the bytes.

    It stops past `limit` nesting levels, and turns Python's non-standard number tokens NaN,
    Infinity and -Infinity (which `json.dump` writes and yajl rejects, failing the whole file)
    into null outside strings, so that only the record holding one is rejected, by the
    record's own checks. The scan state (depth, inside a string, a run of backslashes) is
    carried from chunk to chunk, so every byte is scanned once whatever the length of the
    strings; only a chunk's last few bytes that may begin such a token (at most
    `len(b"-Infinity")`, outside strings) wait for the next chunk. A chunk is looked at in
    full once, to find its quotes, backslashes and brackets; the rest works on those alone.
    """

    def __init__(self, limit: int = MAX_DEPTH) -> None:
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.trailing_backslashes = 0  # run of backslashes ending what was emitted
        self.carry = b""

    def feed(self, chunk: bytes) -> bytes:
        """`self.carry + chunk` sanitised, less a tail that may begin a non-finite token."""
        data = self.carry + chunk
        marks = self._marks(data)
        cut = len(data) - _token_tail(data, marks)
        self.carry = data[cut:]
        return self._emit(data[:cut], marks)

    def finish(self) -> bytes:
        """What is left after the last chunk, sanitised."""
        data, self.carry = self.carry, b""
        return self._emit(data, self._marks(data)) if data else b""

    def _marks(self, data: bytes) -> _Marks:
        """The quotes (unescaped) and brackets of `data`, from the state at its start; the
        state itself is advanced only by `_emit`."""
        codes = np.frombuffer(data, np.uint8)
        positions = np.flatnonzero(_KIND[codes])
        kinds = _KIND[codes[positions]]
        backslash = kinds == _BACKSLASH
        escaped = np.zeros(len(positions), bool)
        if backslash.any() or self.trailing_backslashes:
            # each entry's run of backslashes right before it (a carried run counts from 0)
            adjacent = np.zeros(len(positions), bool)
            adjacent[1:] = backslash[:-1] & (positions[:-1] + 1 == positions[1:])
            run_start = np.maximum.accumulate(np.where(backslash & ~adjacent, positions, -1))
            run = np.zeros(len(positions), np.int64)
            run[1:] = np.where(adjacent[1:], positions[:-1] - run_start[:-1] + 1, 0)
            run[1:] += np.where(adjacent[1:] & (run_start[:-1] == 0), self.trailing_backslashes, 0)
            if len(positions) and positions[0] == 0:
                run[0] = self.trailing_backslashes
            escaped = run % 2 == 1
        quote = (kinds == _QUOTE) & ~escaped
        return _Marks(positions[quote], positions, kinds, self.in_string)

    def _emit(self, data: bytes, marks: _Marks) -> bytes:
        if not data:
            return b""
        end = len(data)
        bracket = (marks.kinds >= _OPEN) & (marks.positions < end)
        at = marks.positions[bracket]
        outside = ~marks.inside(at)
        steps = np.where(marks.kinds[bracket][outside] == _OPEN, 1, -1)
        depth = self.depth + np.cumsum(steps)
        if len(depth) and int(depth.max()) > self.limit:
            raise NestingError(f"JSON nested more than {self.limit} levels deep")
        self.depth = int(depth[-1]) if len(depth) else self.depth
        self.in_string = bool(marks.inside(np.array([end]))[0])
        run = end - len(data.rstrip(b"\\"))
        self.trailing_backslashes = run + (self.trailing_backslashes if run == end else 0)
        if b"NaN" not in data and b"Infinity" not in data:
            return data
        return _NON_FINITE.sub(lambda m: _null_outside(m, marks), data)


_QUOTE, _BACKSLASH, _OPEN, _CLOSE = 1, 2, 3, 4
_KIND = np.zeros(256, np.uint8)
_KIND[[ord('"'), ord("\\"), ord("["), ord("{"), ord("]"), ord("}")]] = [1, 2, 3, 3, 4, 4]
_NON_FINITE = re.compile(rb"-?Infinity|NaN")
_TOKEN_BYTES = np.frombuffer(b"-InfinityaN", np.uint8)  # what NaN and -Infinity are made of
_LONGEST_TOKEN = len(b"-Infinity")


class _Marks:
    """The quotes and brackets of a piece of JSON, and whether it starts inside a string."""

    def __init__(
        self, quotes: np.ndarray, positions: np.ndarray, kinds: np.ndarray, in_string: bool
    ) -> None:
        self.quotes, self.positions, self.kinds, self.in_string = (
            quotes,
            positions,
            kinds,
            in_string,
        )

    def inside(self, at: np.ndarray) -> np.ndarray:
        """Whether the bytes at `at` lie inside a string (an odd number of quotes before;
        so an opening quote is outside, a closing one inside)."""
        return (np.searchsorted(self.quotes, at) % 2 == 1) ^ self.in_string


def _null_outside(match: re.Match[bytes], marks: _Marks) -> bytes:
    return match.group() if marks.inside(np.array([match.start()]))[0] else b"null"


def _token_tail(data: bytes, marks: _Marks) -> int:
    """How many bytes at the end of `data` may be the start of a NaN or -Infinity token: the
    run of their letters outside strings, at most a whole token (valid JSON has no longer
    run; in an invalid file a cut token does not matter, the parser fails on it anyway)."""
    tail = np.frombuffer(data[-_LONGEST_TOKEN:], np.uint8)
    at = np.arange(len(data) - len(tail), len(data))
    letter = np.isin(tail, _TOKEN_BYTES) & ~marks.inside(at)
    other = np.flatnonzero(~letter)
    return len(tail) - 1 - int(other[-1]) if len(other) else len(tail)


class _Records:
    """An ijson target: numbers the records of one list and hands each to a callback."""

    def __init__(self, callback: OnRecord) -> None:
        self.callback = callback
        self.count = 0

    def send(self, record: Any) -> None:
        self.callback(self.count, record)
        self.count += 1


class _Batches:
    """Hands sanitised bytes to the ijson parsers.

    yajl lexes a string token that is still open again from its start on every chunk it is
    sent, so a long string spread over many chunks would cost quadratic time. While a string
    is open, bytes are held until they are at least as many as the parsers already hold of
    it: the sizes sent grow geometrically, and the total work stays linear.
    """

    def __init__(self, parsers: list[Any]) -> None:
        self.parsers = parsers
        self.held = bytearray()
        self.sent_in_string = 0  # bytes sent since the parsers last stood outside a string

    def add(self, data: bytes, in_string: bool) -> None:
        """Take `data`, which ends inside a string or not (`in_string`)."""
        self.held += data
        if in_string and len(self.held) < max(CHUNK_BYTES, self.sent_in_string):
            return
        self.sent_in_string = self.sent_in_string + len(self.held) if in_string else 0
        if self.held:  # an empty chunk would end ijson's parse
            for parser in self.parsers:
                parser.send(self.held)
        self.held = bytearray()


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
    sanitizer, digest, batches = JsonSanitizer(), hashlib.sha256(), _Batches(parsers)
    try:
        with fsspec.open(url, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
                batches.add(sanitizer.feed(chunk), sanitizer.in_string)
            batches.add(sanitizer.finish(), in_string=False)
        for parser in parsers:
            parser.close()
    except NestingError as error:
        raise ValueError(f"{url}: {error}") from None
    except ijson.JSONError as error:
        raise ValueError(f"{url}: not a COCO annotations file: {error}") from None
    return digest.hexdigest(), {name: target.count for name, target in targets.items()}

"""Deterministic, hash-based selection: the same items whatever order or engine reads them."""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def stable_hash(seed: int, key: str) -> int:
    """A 64-bit hash of (seed, key), identical on every machine and Python process."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def item_rng(seed: int, key: str, *salt: str) -> np.random.Generator:
    """A generator seeded from (seed, key, salt): per-item randomness independent of order."""
    return np.random.default_rng([stable_hash(seed, "\x1f".join((key, *salt)))])


def bottom_k_items(items: Iterable[tuple[str, T]], k: int, seed: int) -> list[tuple[str, T]]:
    """The k (key, payload) pairs whose keys have the smallest seeded hash, sorted by hash.

    A streaming, order-free sample: memory is O(k) and the selected set does not depend on the
    order the items arrive in, nor on whether they are read whole or in pieces whose bottom-k
    are merged. A repeated key keeps its first payload.
    """
    if k <= 0:
        return []
    heap: list[tuple[int, str]] = []  # max-heap on hash via negation
    payloads: dict[str, T] = {}
    for key, payload in items:
        if key in payloads:
            continue
        entry = (-stable_hash(seed, key), key)
        if len(heap) < k:
            heapq.heappush(heap, entry)
            payloads[key] = payload
        elif entry > heap[0]:
            _, evicted = heapq.heapreplace(heap, entry)
            del payloads[evicted]
            payloads[key] = payload
    ordered = sorted(heap, key=lambda e: (-e[0], e[1]))
    return [(key, payloads[key]) for _, key in ordered]


def bottom_k(keys: Iterable[str], k: int, seed: int) -> list[str]:
    """The k keys with the smallest seeded hash (see `bottom_k_items`)."""
    return [key for key, _ in bottom_k_items(((key, None) for key in keys), k, seed)]


def point_count(rng: np.random.Generator, lo: int, hi: int) -> int:
    """How many prompt points an example gets: uniform in [lo, hi]."""
    if not 1 <= lo <= hi:
        raise ValueError(f"need 1 <= min <= max prompt points, got {lo}, {hi}")
    return int(rng.integers(lo, hi + 1))


def pixel_draw(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """k of n foreground pixels (indices in [0, n)), uniformly and in random order, so every
    prefix is a uniform draw too; distinct unless the region has fewer than k pixels."""
    if n < 1:
        raise ValueError("empty mask: no pixel to put a prompt point on")
    return rng.choice(n, size=k, replace=n < k)


def prompt_points(mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k prompt points inside a boolean mask (H, W): (k, 2) float32 normalised pixel centres
    ((x + 0.5) / W, (y + 0.5) / H). The one rule every producer of prompt points follows."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    inside = np.flatnonzero(mask)
    y, x = np.divmod(inside[pixel_draw(inside.size, k, rng)], mask.shape[1])
    height, width = mask.shape
    return np.stack([(x + 0.5) / width, (y + 0.5) / height], axis=1).astype(np.float32)


def stable_hashes(seed: int, prefix: str, ids: Iterable[bytes]) -> np.ndarray:
    """`stable_hash(seed, prefix + id)` of every id (UTF-8 bytes), as a uint64 array: the
    per-row cost of hash selection over millions of index rows, without a Python int per row."""
    head = f"{seed}\x1f{prefix}".encode()
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(head + key, digest_size=8).digest() for key in ids])
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def smallest_hashes(hashes: np.ndarray, keys: list, k: int) -> np.ndarray:
    """Positions of the k smallest hashes, sorted by hash (ties: position), a repeated key
    counted once at its first position: `bottom_k_items` over arrays, for candidates held as
    Arrow columns. `keys[i]` is the key of `hashes[i]`; only equal-hash runs are compared."""
    order = np.argsort(hashes, kind="stable")
    ranked = hashes[order]
    same = np.flatnonzero(ranked[1:] == ranked[:-1]) + 1
    if len(same):
        repeated = [i for i in same.tolist() if keys[order[i]] == keys[order[i - 1]]]
        order = np.delete(order, repeated)
    return order[:k]

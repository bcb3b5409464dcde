import random

import numpy as np

from dicepipe.sampling import (
    bottom_k,
    bottom_k_items,
    item_rng,
    smallest_hashes,
    stable_hash,
    stable_hashes,
)


def test_stable_hash_is_fixed_across_processes():
    # Pinned values: a change here changes every sample ever drawn.
    assert stable_hash(0, "a") == 0x291CD4D0F90EC05A
    assert stable_hash(0, "a") != stable_hash(1, "a")


def test_bottom_k_is_order_free_and_piecewise_mergeable():
    keys = [f"img{i:05d}" for i in range(2000)]
    whole = bottom_k(keys, 50, seed=7)
    shuffled = keys[:]
    random.Random(1).shuffle(shuffled)
    assert bottom_k(shuffled, 50, seed=7) == whole
    pieces = [bottom_k(keys[i : i + 300], 50, seed=7) for i in range(0, 2000, 300)]
    assert bottom_k([k for piece in pieces for k in piece], 50, seed=7) == whole
    assert len(set(whole)) == 50
    assert bottom_k(keys, 50, seed=8) != whole


def test_bottom_k_items_keeps_payloads_and_ignores_duplicates():
    items = [("b", 2), ("a", 1), ("b", 99), ("c", 3)]
    picked = dict(bottom_k_items(items, 3, seed=0))
    assert picked == {"a": 1, "b": 2, "c": 3}
    assert bottom_k_items(items, 0, seed=0) == []


def test_item_rng_depends_on_seed_key_and_salt_only():
    a = item_rng(0, "sa1b/sa_1", "points").integers(0, 1 << 30, 4)
    assert np.array_equal(a, item_rng(0, "sa1b/sa_1", "points").integers(0, 1 << 30, 4))
    assert not np.array_equal(a, item_rng(0, "sa1b/sa_1", "colors").integers(0, 1 << 30, 4))
    assert not np.array_equal(a, item_rng(1, "sa1b/sa_1", "points").integers(0, 1 << 30, 4))


def test_stable_hashes_equal_stable_hash_per_key():
    ids = ["a", "0000000000000abc", "\u00e9t\u00e9", ""]
    hashes = stable_hashes(7, "openimages/", [i.encode() for i in ids])
    assert hashes.dtype == np.uint64
    assert hashes.tolist() == [stable_hash(7, f"openimages/{i}") for i in ids]


def test_smallest_hashes_is_bottom_k_over_arrays():
    keys = [f"k{i % 70}" for i in range(100)]  # k0..k29 appear twice
    hashes = stable_hashes(3, "", [k.encode() for k in keys])
    chosen = smallest_hashes(hashes, keys, 25)
    expected = bottom_k_items(((k, i) for i, k in enumerate(keys)), 25, 3)
    assert [(keys[i], int(i)) for i in chosen] == expected  # first position of a repeated key

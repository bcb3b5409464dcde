"""The composite stage's logic: foreground checks, regenerating one composite, backgrounds."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dicepipe.imageio import decode_image, encode_png
from dicepipe.params.composite import CompositeParams, CompositeStageParams, MattingRoots
from dicepipe.pipeline import composite
from dicepipe.storage import read_fingerprint

MATTING = Path(__file__).resolve().parents[2] / "data" / "sample" / "matting"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("composite")
    for i in range(3):
        colour = np.full((40, 56, 3), (60 * i, 90, 200 - 50 * i), np.uint8)
        (root / f"bg{i}.png").write_bytes(encode_png(colour))
    params = CompositeStageParams(
        seed=3,
        count=6,
        per_unit=3,
        foregrounds=MattingRoots(
            p3m=str(MATTING / "p3m10k"), am2k=str(MATTING / "am2k"), aim500=str(MATTING / "aim500")
        ),
        backgrounds=str(root / "bg*.png"),
        geometry=CompositeParams(size=64, min_mask_pixels=16),
    )
    refs = composite.foreground_refs(params)
    cache = root / "cache"
    good = set(composite.check_foregrounds(refs, cache, root / "fg-errors.parquet"))
    usable = [(r, ref) for r, ref in refs if ref.key in good]
    pool = composite.write_pool(composite.background_pool(params, root / "no-samples"), root)
    return root, params, refs, usable, pool, cache


def _rows(setup, params, block, out):
    root, _, _, usable, pool, cache = setup
    composite.run_unit(block, params, usable, pool, cache, root / out)
    return pq.read_table(root / out / f"{composite.unit_name(block, params)}.parquet").to_pylist()


def test_bad_foregrounds_are_quarantined_with_their_reason(setup):
    root, _, refs, usable, pool, cache = setup
    errors = pq.read_table(root / "fg-errors.parquet").to_pylist()
    assert {(e["key"], e["reason"]) for e in errors} == {
        ("p3m/p_nomask", "missing_alpha"),
        ("aim500/o_badsize", "size_mismatch"),
    }
    assert len(usable) == len(refs) - 2 == 9
    assert len(list(cache.rglob("*.png"))) == 9  # one cached colour estimate per foreground
    keys = pq.read_table(pool.path)["key"].to_pylist()
    assert keys == sorted(keys) and len(keys) == pool.size == 3


def test_any_composite_regenerates_alone_byte_for_byte(setup):
    _, params, *_ = setup
    block = _rows(setup, params, (3, 6), "blocks")
    alone = _rows(setup, replace(params, per_unit=1), (4, 5), "alone")
    assert alone[0]["key"] == "composite/00000004"
    assert alone[0] == {**block[1], "unit": alone[0]["unit"]}


def test_composites_are_reproducible_and_points_lie_on_the_mask(setup):
    _, params, *_ = setup
    first = _rows(setup, params, (0, 3), "first")
    assert first == _rows(setup, params, (0, 3), "second")
    for row in first:
        assert row["source"] in {"p3m", "am2k", "aim500"} and row["width"] == 64
        mask = decode_image(row["target"]).rgb[..., 0] == 255
        assert 1 <= len(row["points"]) <= 5
        assert all(mask[int(y * 64), int(x * 64)] for x, y in row["points"])


def test_units_get_a_reference_to_the_pool_not_the_pool(setup, tmp_path):
    root, params, _, usable, small, cache = setup
    many = [(f"sample/{i:09d}", f"/data/work/samples/unit-{i % 50}.parquet") for i in range(50_000)]
    large = composite.write_pool(many, tmp_path)
    assert Path(large.path).name == f"pool-{large.sha256}.parquet" and large.size == 50_000
    sizes = [len(pickle.dumps(((0, 3), params, usable, pool))) for pool in (small, large)]
    assert sizes[1] - sizes[0] < 200  # the path differs, not the pool
    assert composite.write_pool(many, tmp_path) == large  # same pool, same file
    assert list(tmp_path.glob("pool-*.parquet")) == [Path(large.path)]


def test_the_fingerprint_follows_the_pool_content(setup, tmp_path):
    root, params, _, usable, pool, cache = setup
    unit = tmp_path / "out" / f"{composite.unit_name((0, 3), params)}.parquet"

    def fingerprint(reference):
        composite.run_unit((0, 3), params, usable, reference, cache, tmp_path / "out")
        return read_fingerprint(unit)

    first = fingerprint(pool)
    same = composite.write_pool(composite.background_pool(params, root / "x"), tmp_path / "b")
    assert same.path != pool.path and fingerprint(same) == first  # content, not place
    other = composite.write_pool([("bg", str(root / "bg0.png"))], tmp_path / "c")
    assert fingerprint(other) != first

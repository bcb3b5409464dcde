"""The synthetic hair-matting corpus: layouts, determinism, fine hair structure, colour bleed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dicepipe.sources.synthetic.matting import (
    render_hair_alpha,
    render_matting_item,
    write_matting_corpus,
)


def _files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_layouts_and_byte_identical_for_a_seed(tmp_path: Path) -> None:
    first = write_matting_corpus(tmp_path / "a", seed=5, per_source=2, size=64)
    write_matting_corpus(tmp_path / "b", seed=5, per_source=2, size=64)
    write_matting_corpus(tmp_path / "c", seed=6, per_source=2, size=64)
    a, b, c = (_files(tmp_path / n) for n in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c
    assert sorted(a) == [
        "aim500/mask/o_0000.png",
        "aim500/mask/o_0001.png",
        "aim500/mask/o_badsize.png",
        "aim500/original/o_0000.jpg",
        "aim500/original/o_0001.jpg",
        "aim500/original/o_badsize.jpg",
        "am2k/train/mask/m_0000.png",
        "am2k/train/mask/m_0001.png",
        "am2k/train/original/m_0000.jpg",
        "am2k/train/original/m_0001.jpg",
        "p3m10k/train/blurred_image/p_0000.jpg",
        "p3m10k/train/blurred_image/p_0001.jpg",
        "p3m10k/train/blurred_image/p_nomask.jpg",
        "p3m10k/train/mask/p_0000.png",
        "p3m10k/train/mask/p_0001.png",
    ]
    assert first["bytes"] == sum(len(v) for v in a.values())
    assert first["roots"]["am2k"] == str(tmp_path / "a" / "am2k")


def test_default_corpus_is_small(tmp_path: Path) -> None:
    info = write_matting_corpus(tmp_path)
    assert len(info["items"]) == 9 and len(info["bad"]) == 2
    assert 50_000 < info["bytes"] < 400_000


def test_alpha_has_thin_soft_hair_strands() -> None:
    alpha = render_hair_alpha(np.random.default_rng(0), 160)
    soft = (alpha > 0.02) & (alpha < 0.98)
    assert soft.mean() > 0.15  # a quarter of the frame is fractional: hair and soft edges
    hair = (alpha > 0.3).astype(np.uint8)
    opened = cv2.morphologyEx(hair, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    removed = int(hair.sum() - opened.sum())
    assert removed > 1000  # strands one or two pixels wide vanish under a 3x3 opening
    top = alpha[:40]  # above the head: only strands reach there
    assert 0.05 < (top > 0.1).mean() < 0.6


def test_image_carries_the_backdrop_colour_into_the_hair() -> None:
    item = render_matting_item(np.random.default_rng(1), 96)
    a = item.alpha[..., None].astype(np.float64)
    shade = 1.0 - 0.15 * (np.arange(96) / 96)[:, None, None]
    expected = a * item.foreground + (1 - a) * np.array(item.bleed) * shade
    assert np.abs(item.image - expected).max() < 0.501  # float32 maths, rounded once
    band = (item.alpha > 0.1) & (item.alpha < 0.9)
    raw_err = np.abs(item.image[band].astype(float) - item.foreground[band]).mean()
    assert raw_err > 20  # the bleed is large enough for an estimator to have work to do

"""Readers of the P3M-10k, AM-2k and AIM-500 layouts, and decoding with quarantine reasons."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dicepipe.sources.matting import (
    BadForeground,
    Foreground,
    decode_foreground,
    iter_foregrounds,
    list_foregrounds,
)
from dicepipe.sources.synthetic.matting import write_matting_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_matting_corpus(tmp_path_factory.mktemp("matting"), seed=0, per_source=3, size=64)


def _read_all(roots: dict, prefix: str = "") -> tuple[dict, dict]:
    good, bad = {}, {}
    for source, root in roots.items():
        for fg in iter_foregrounds(prefix + root, source):
            try:
                good[fg.key] = decode_foreground(fg)
            except BadForeground as exc:
                bad[fg.key] = exc
    return good, bad


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 128, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_readers_find_every_item_and_quarantine_the_bad_ones(corpus: dict) -> None:
    good, bad = _read_all(corpus["roots"])
    assert sorted(good) == sorted(corpus["items"])
    assert {key: exc.kind for key, exc in bad.items()} == corpus["bad"]
    assert bad["aim500/o_badsize"].message == "size_mismatch: alpha 48x48 vs image 64x64"
    assert bad["p3m/p_nomask"].message.startswith("missing_alpha: no mask for image ")
    for rgb, alpha in good.values():
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        assert alpha.shape == (64, 64) and alpha.dtype == np.float32
        assert alpha.min() == 0.0 and alpha.max() == 1.0


def test_items_are_sorted_by_stem_with_source_keys(corpus: dict) -> None:
    refs = list_foregrounds(corpus["roots"]["p3m"], "p3m")
    assert [r.stem for r in refs] == ["p_0000", "p_0001", "p_0002", "p_nomask"]
    assert [r.key for r in refs][0] == "p3m/p_0000"
    assert refs[-1].alpha_path is None and refs[-1].image_path.endswith("p_nomask.jpg")


def test_file_url_reads_the_same_bytes(corpus: dict) -> None:
    root = corpus["roots"]["am2k"]
    local = list(iter_foregrounds(root, "am2k"))
    url = list(iter_foregrounds(Path(root).as_uri(), "am2k"))
    assert url[0].key == "am2k/m_0000" and len(url) == 3
    assert [(f.key, f.image_bytes, f.alpha_bytes) for f in url] == [
        (f.key, f.image_bytes, f.alpha_bytes) for f in local
    ]


def test_memory_filesystem_and_key_filter() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/mat/original/o_1.jpg", _jpeg())
    fs.pipe("/mat/mask/o_1.png", _png(np.full((8, 8), 255, np.uint8)))
    fs.pipe("/mat/mask/o_2.png", _png(np.full((8, 8), 255, np.uint8)))
    items = list(iter_foregrounds("memory://mat", "aim500"))
    assert [f.key for f in items] == ["aim500/o_1", "aim500/o_2"]
    assert items[1].problem == "missing_image: no image for mask o_2.png"
    only = list(iter_foregrounds("memory://mat", "aim500", keys=["aim500/o_2"]))
    assert [f.key for f in only] == ["aim500/o_2"]
    with pytest.raises(BadForeground, match="^missing_image"):
        decode_foreground(items[1])


def test_missing_layout_folder_and_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train/blurred_image"):
        list_foregrounds(tmp_path, "p3m")
    with pytest.raises(ValueError, match="unknown matting source"):
        list_foregrounds(tmp_path, "coco")


@pytest.mark.parametrize(
    ("image", "alpha", "kind"),
    [
        (b"", _png(np.full((8, 8), 255, np.uint8)), "unreadable_image"),
        (b"not an image", _png(np.full((8, 8), 255, np.uint8)), "unreadable_image"),
        (_jpeg()[:-200], _png(np.full((8, 8), 255, np.uint8)), "unreadable_image"),
        (_jpeg(), b"\x89PNG\r\n\x1a\n", "unreadable_alpha"),
        (_jpeg(), _png(np.zeros((8, 8), np.uint8)), "empty_alpha"),
        (_jpeg(), _png(np.full((8, 9), 255, np.uint8)), "size_mismatch"),
    ],
)
def test_bad_foregrounds_raise_with_a_kind(image: bytes, alpha: bytes, kind: str) -> None:
    with pytest.raises(BadForeground) as info:
        decode_foreground(Foreground("aim500/x", "aim500", "x", image, alpha))
    assert info.value.kind == kind
    assert info.value.message.startswith(kind + ": ")
    assert info.value.reason == kind


def test_too_large_is_checked_before_decoding() -> None:
    fg = Foreground("aim500/x", "aim500", "x", _jpeg(), _png(np.full((8, 8), 9, np.uint8)))
    with pytest.raises(BadForeground, match="^too_large: image is 8x8 > 63 px"):
        decode_foreground(fg, max_pixels=63)


def test_alpha_modes_take_one_channel_at_full_precision() -> None:
    ramp16 = np.array([[0, 1, 32768, 65535]], np.uint16).repeat(4, axis=0)
    rgb_mask = np.zeros((4, 4, 3), np.uint8)
    rgb_mask[..., 0] = 51
    cutout = np.zeros((4, 4, 4), np.uint8)
    cutout[..., 3] = 102  # mask only in the A band, colour bands constant
    image = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(image, "PNG")  # pixel-exact image
    cases = [(ramp16, ramp16[0] / 65535.0), (rgb_mask, 0.2), (cutout, 0.4)]
    for mask, expected in cases:
        fg = Foreground("k", "aim500", "k", image.getvalue(), _png(mask))
        rgb, alpha = decode_foreground(fg)
        assert rgb.shape == (4, 4, 3)
        np.testing.assert_allclose(alpha, np.broadcast_to(expected, (4, 4)), atol=1e-6)

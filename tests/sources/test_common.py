import io
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from dicepipe.imageio import decode_image, encode_jpeg
from dicepipe.sources.common import (
    ItemError,
    decode_rles,
    points_in_rle,
    read_bytes,
    rle_runs,
    sample_row,
)
from dicepipe.sources.openimages import check_safe_name


def _rle(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def _dense(runs: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.repeat(np.arange(runs.size) % 2, runs).reshape(width, height).T.astype(bool)


def test_rle_runs_match_pycocotools_on_random_masks():
    rng = np.random.default_rng(0)
    for case in range(200):
        height, width = (int(v) for v in rng.integers(1, 70, 2))
        mask = rng.random((height, width)) < rng.random()
        mask[:] = False if case % 11 == 0 else mask
        rle = _rle(mask)
        for counts in (rle["counts"], rle["counts"].decode()):
            runs = rle_runs(counts, height, width)
            assert np.array_equal(_dense(runs, height, width), mask)
            area = decode_rles([counts], height, width).areas()[0]
            assert area == int(mask_utils.area(rle)) == int(mask.sum())


def test_many_rles_decode_in_one_pass_like_one_by_one():
    rng = np.random.default_rng(1)
    masks = [rng.random((30, 20)) < p for p in (0.0, 0.02, 0.5, 0.97, 1.0)]
    masks.append(np.zeros((30, 20), bool))
    masks[-1][3:9, 4:15] = True
    counts = [_rle(m)["counts"].decode() for m in masks]
    counts[2] = _rle(masks[2])["counts"]  # bytes and lists mix with strings
    counts[4] = rle_runs(counts[4], 30, 20).tolist()
    for batch in (counts, [c.decode() if isinstance(c, bytes) else c for c in counts[:4]]):
        rles = decode_rles(batch, 30, 20)
        for i, mask in enumerate(masks[: len(batch)]):
            runs = rles.runs[rles.first[i] : rles.first[i] + rles.size[i]]
            assert np.array_equal(_dense(runs, 30, 20), mask)
        assert rles.areas().tolist() == [int(m.sum()) for m in masks[: len(batch)]]
    for bad in ([counts[0], counts[1], ""], [counts[0], "0é"], [counts[0], [3, 5]]):
        with pytest.raises(ItemError) as caught:
            decode_rles(bad, 30, 20)
        assert caught.value.reason == "invalid_rle"


def test_rle_runs_decode_long_runs_of_a_large_image():
    mask = np.zeros((1500, 2250), bool)
    mask[100:1400, 5:2000] = True
    mask[700, :] = False
    runs = rle_runs(_rle(mask)["counts"].decode(), 1500, 2250)
    assert np.array_equal(_dense(runs, 1500, 2250), mask)


@pytest.mark.parametrize(
    "counts",
    [
        "0`0!",  # a character outside the alphabet
        "0`0P",  # ends inside a value (continuation bit set)
        _rle(np.ones((5, 5)))["counts"].decode(),  # covers 25 pixels, not 16
        [3, 20],  # uncompressed runs that overflow the image
        [-4, 20],
        {"not": "counts"},
        "",
    ],
)
def test_invalid_rle_is_an_item_error(counts):
    with pytest.raises(ItemError) as caught:
        rle_runs(counts, 4, 4)
    assert caught.value.reason == "invalid_rle"


def test_points_of_many_masks_match_one_by_one():
    masks = [np.zeros((40, 60), bool) for _ in range(3)]
    masks[0][5:12, 40:55] = masks[1][30:33, 2:4] = masks[2][0:40, 0:1] = True
    rles = decode_rles([_rle(m)["counts"] for m in masks], 40, 60)
    batch = rles.points([2, 0], 4, [np.random.default_rng(7), np.random.default_rng(8)])
    for i, seed, points in ((2, 7, batch[0]), (0, 8, batch[1])):
        single = rle_runs(_rle(masks[i])["counts"], 40, 60)
        assert points == points_in_rle(single, 40, 60, 4, np.random.default_rng(seed))
        assert all(masks[i][int(y * 40), int(x * 60)] for x, y in points)


def test_prompt_points_lie_inside_the_mask_and_prefixes_are_stable():
    mask = np.zeros((40, 60), bool)
    mask[5:12, 40:55] = True
    mask[30:33, 2:4] = True
    runs = rle_runs(_rle(mask)["counts"], 40, 60)
    points = points_in_rle(runs, 40, 60, 5, np.random.default_rng(3))
    assert len(points) == 5 and len({tuple(p) for p in points}) == 5
    for x, y in points:
        assert mask[int(y * 40), int(x * 60)]
        assert (x * 60) % 1 == 0.5 and (y * 40) % 1 == 0.5  # pixel centres
    assert points_in_rle(runs, 40, 60, 5, np.random.default_rng(3)) == points
    tiny = np.zeros((4, 4), bool)
    tiny[1, 2] = tiny[3, 0] = True
    few = points_in_rle(rle_runs(_rle(tiny)["counts"], 4, 4), 4, 4, 5, np.random.default_rng(0))
    # fewer pixels than points: the shared rule repeats pixels rather than return fewer points
    assert len(few) == 5 and set(map(tuple, few)) == {(0.125, 0.875), (0.625, 0.375)}
    assert points_in_rle(rle_runs([16], 4, 4), 4, 4, 5, np.random.default_rng(0)) == []


def _image(width: int = 40, height: int = 30) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 6, yy * 8, (xx + yy) * 3], axis=2).astype(np.uint8)


def _pil_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _row(data: bytes, max_pixels: int = 10**6, rotate_ccw: int = 0) -> dict:
    return sample_row("src", "id", "unit", "origin", data, [], max_pixels, rotate_ccw)


def _reason(data: bytes, max_pixels: int = 10**6) -> str:
    with pytest.raises(ItemError) as caught:
        _row(data, max_pixels)
    return caught.value.reason


def test_upright_rgb_jpeg_is_kept_byte_for_byte():
    data = encode_jpeg(_image())
    row = _row(data)
    assert row["image"] == data and (row["width"], row["height"]) == (40, 30)


def test_broken_images_raise_item_errors_with_reasons():
    data = encode_jpeg(_image(400, 300))
    assert _reason(b"") == "empty"
    assert _reason(data[: len(data) // 2]) == "truncated"  # cut in the pixel data
    assert _reason(data[:300]) == "truncated"  # cut in the headers
    assert _reason(b"this is text, not a JPEG") == "not_an_image"
    assert _reason(data, max_pixels=400 * 300 - 1) == "too_many_pixels"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_pillow_own_bomb_limit_is_quarantined_not_raised():
    # 10000 x 9500 passes Pillow's warning threshold: it must not escape as an exception.
    assert _reason(_png_header_only(10_000, 9_500), max_pixels=200_000_000) == "too_many_pixels"
    assert _reason(_png_header_only(20_000, 20_000), max_pixels=10**9) == "too_many_pixels"


def test_unusual_modes_decode_and_canonicalise_to_png():
    rgb = _image()
    cmyk = _pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    gray16 = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
    assert gray16.mode == "I;16"
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    for data in (cmyk, _pil_bytes(gray16, "PNG"), _pil_bytes(palette, "PNG")):
        row = _row(data)
        assert row["image"].startswith(b"\x89PNG") and (row["width"], row["height"]) == (40, 30)
        assert np.array_equal(decode_image(row["image"]).rgb, decode_image(data).rgb)
    decoded16 = decode_image(_row(_pil_bytes(gray16, "PNG"))["image"]).rgb
    assert np.array_equal(decoded16[:, :, 1], rgb[:, :, 0])  # 16-bit keeps its high byte


def test_exif_rotation_is_applied():
    image = Image.fromarray(_image())
    exif = Image.Exif()
    exif[0x0112] = 6  # stored pixels must be turned 90 degrees clockwise to view
    row = _row(_pil_bytes(image, "JPEG", quality=95, exif=exif))
    assert (row["width"], row["height"]) == (30, 40) and row["image"].startswith(b"\x89PNG")


def test_rotate_ccw_turns_counterclockwise():
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[0, 39] = (255, 0, 0)  # top-right marker
    data = _pil_bytes(Image.fromarray(rgb), "PNG")
    turned = decode_image(_row(data, rotate_ccw=90)["image"]).rgb
    assert turned.shape == (40, 30, 3) and tuple(turned[0, 0]) == (255, 0, 0)  # to top-left
    upside = decode_image(_row(data, rotate_ccw=180)["image"]).rgb
    assert tuple(upside[29, 0]) == (255, 0, 0)
    assert tuple(decode_image(_row(data, rotate_ccw=270)["image"]).rgb[39, 29]) == (255, 0, 0)


def test_read_bytes_reports_missing_and_unreadable(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    assert read_bytes(str(tmp_path / "a.jpg")) == b"x"
    for url, reason in ((tmp_path / "none.jpg", "missing_file"), (tmp_path, "unreadable_file")):
        with pytest.raises(ItemError) as caught:
            read_bytes(str(url))
        assert caught.value.reason == reason


def test_safe_names_and_item_errors_survive_pickling():
    assert check_safe_name("0024fa5a72b39d12") == "0024fa5a72b39d12"
    for bad in ("../x", "/etc/passwd", "a/b", "", "..", None, "x\x00"):
        with pytest.raises(ItemError):
            check_safe_name(bad)
    error = pickle.loads(pickle.dumps(ItemError("bad_id", "message")))
    assert (error.reason, error.message) == ("bad_id", "message")

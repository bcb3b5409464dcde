import io
import struct

import numpy as np
import pytest
from PIL import Image

from dicepipe.imageio import (
    ImageDecodeError,
    canonical_image_bytes,
    decode_image,
    encode_jpeg,
    encode_png,
    exif_focal_px,
    rle_mask,
    rle_runs_from_strings,
    rle_string,
)
from tests.reliability.craft import (
    ASCII,
    RATIONAL,
    SHORT,
    box,
    focal_entry,
    jpeg_with_exif,
    orientation_entry,
    raw_exif,
    rle,
    uncompressed_counts,
)


def _pil_bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _gradient(height: int = 24, width: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 7 % 256, y * 9 % 256, (x + y) * 3 % 256], axis=2).astype(np.uint8)


def test_png_round_trip_is_exact_and_deterministic():
    rgb = _gradient()
    data = encode_png(rgb)
    assert data == encode_png(rgb)
    decoded = decode_image(data)
    assert decoded.format == "PNG" and np.array_equal(decoded.rgb, rgb)


def test_jpeg_encode_decodes_close():
    rgb = _gradient()
    decoded = decode_image(encode_jpeg(rgb, quality=95))
    assert decoded.rgb.shape == rgb.shape and decoded.format == "JPEG"
    assert np.abs(decoded.rgb.astype(int) - rgb).mean() < 6


def test_grayscale_becomes_three_equal_channels():
    gray = Image.fromarray(np.arange(24 * 32, dtype=np.uint8).reshape(24, 32))
    rgb = decode_image(_pil_bytes(gray, "PNG")).rgb
    assert rgb.shape == (24, 32, 3)
    assert np.array_equal(rgb[..., 0], np.asarray(gray)) and np.array_equal(
        rgb[..., 0], rgb[..., 2]
    )


def test_palette_png_uses_palette_colours():
    palette = Image.new("P", (4, 2))
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    rgb = decode_image(_pil_bytes(palette, "PNG")).rgb
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[0, 1].tolist() == [0, 255, 0]


def test_cmyk_jpeg_converts_to_rgb():
    cmyk = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # pure red in CMYK
    decoded = decode_image(_pil_bytes(cmyk, "JPEG", quality=95))
    assert decoded.mode == "CMYK"
    red, green, blue = decoded.rgb.reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 60 and blue < 60


def test_sixteen_bit_png_keeps_the_high_byte():
    values = (np.arange(16 * 8, dtype=np.uint16).reshape(8, 16) * 512).astype(np.uint16)
    image = Image.fromarray(values)
    decoded = decode_image(_pil_bytes(image, "PNG"))
    assert decoded.mode.startswith("I")
    assert np.array_equal(decoded.rgb[..., 1], (values >> 8).astype(np.uint8))


def test_alpha_is_composited_on_black():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :2, 3] = 255  # left half opaque red, right half fully transparent
    rgb = decode_image(_pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG")).rgb
    assert rgb[0, 0].tolist() == [200, 0, 0] and rgb[0, 3].tolist() == [0, 0, 0]


@pytest.mark.parametrize(("orientation", "turns"), [(3, 2), (6, 1), (8, -1)])
def test_exif_orientation_is_applied(orientation, turns):
    upright = _gradient(12, 20)
    # What the camera stored: applying the tag (rotating back) must give `upright`.
    stored = np.rot90(upright, turns)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _pil_bytes(Image.fromarray(np.ascontiguousarray(stored)), "PNG", exif=exif)
    decoded = decode_image(data)
    assert decoded.orientation == orientation
    assert np.array_equal(decoded.rgb, upright)


def test_canonical_bytes_keep_plain_jpeg_and_re_encode_the_rest():
    jpeg = encode_jpeg(_gradient())
    kept, _ = canonical_image_bytes(jpeg)
    assert kept is jpeg
    cmyk = _pil_bytes(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")
    converted, decoded = canonical_image_bytes(cmyk)
    assert converted[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(decode_image(converted).rgb, decoded.rgb)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"this is a text file, not a JPEG\n" * 4, "not_an_image"),
    ],
)
def test_unusable_bytes_raise_with_reason(data, reason):
    with pytest.raises(ImageDecodeError) as error:
        decode_image(data)
    assert error.value.reason == reason


def test_truncated_jpeg_is_reported():
    data = encode_jpeg(_gradient(64, 64))
    with pytest.raises(ImageDecodeError) as error:
        decode_image(data[: len(data) // 2])
    assert error.value.reason == "truncated"


def test_decompression_bomb_is_refused_before_decoding():
    bomb = _pil_bytes(Image.new("L", (4000, 4000)), "PNG")  # tiny file, 16 Mpx
    assert len(bomb) < 100_000
    with pytest.raises(ImageDecodeError, match="exceeds the limit of 1000000 pixels") as error:
        decode_image(bomb, max_pixels=1_000_000)
    assert error.value.reason == "too_many_pixels"


def test_pillow_bomb_guard_at_open_is_reported_as_too_many_pixels():
    huge = _pil_bytes(Image.new("1", (10_000, 10_000)), "PNG")  # 100 Mpx, beyond Pillow's guard
    with pytest.raises(ImageDecodeError) as error:
        decode_image(huge, max_pixels=10**9)
    assert error.value.reason == "too_many_pixels"


def test_cut_header_is_truncated_not_a_crash():
    data = encode_png(_gradient())
    with pytest.raises(ImageDecodeError) as error:
        decode_image(data[:40])
    assert error.value.reason in {"truncated", "not_an_image"}


@pytest.mark.parametrize(
    "entry",
    [
        orientation_entry(ASCII, 4, b"abc\0"),  # a string
        orientation_entry(RATIONAL, 1, b"\0\0\0\0"),  # a fraction (offset 0: garbage)
        orientation_entry(SHORT, 1, struct.pack("<H", 9)),  # out of range
    ],
)
def test_a_bogus_exif_orientation_is_ignored_and_never_kept(entry):
    rgb = _gradient(16, 24)
    data = jpeg_with_exif(rgb, raw_exif([entry]))
    decoded = decode_image(data)
    assert decoded.orientation == 0 and decoded.rgb.shape == (16, 24, 3)
    canonical, _ = canonical_image_bytes(data)
    assert canonical[:4] == b"\x89PNG"  # re-encoded: no stored file carries the bogus tag
    assert np.array_equal(decode_image(canonical).rgb, decoded.rgb)


def test_exif_focal_length_is_read_from_the_35mm_tag_only_when_sane():
    rgb = _gradient(30, 40)
    good = jpeg_with_exif(rgb, raw_exif([], [focal_entry(50)]))
    assert exif_focal_px(good, 40, 30) == pytest.approx(50 * 50 / np.hypot(36, 24))
    assert exif_focal_px(jpeg_with_exif(rgb, raw_exif([], [focal_entry(0)])), 40, 30) is None
    assert exif_focal_px(encode_jpeg(rgb), 40, 30) is None
    assert exif_focal_px(b"not an image", 40, 30) is None


@pytest.mark.parametrize("seed", range(6))
def test_rle_string_round_trips_with_pycocotools(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((23, 31)) < (0.05 + 0.15 * seed)
    mask[: seed * 3, :] = seed % 2 == 0  # long runs too
    counts = uncompressed_counts(mask)
    text = rle_string(counts)
    assert text == rle(mask)["counts"]
    runs, per_text = rle_runs_from_strings([text.encode()], mask.size)
    assert runs.tolist() == counts and per_text.tolist() == [len(counts)]
    assert np.array_equal(rle_mask(runs, 23, 31), mask)


def test_rle_strings_that_do_not_cover_the_image_are_refused():
    text = rle(box(8, 8, 1, 4, 2, 5))["counts"].encode()
    for bad, pixels in ((text, 65), (b"0`0!!", 64), (b"", 64), (text + b"\x7f", 64)):
        with pytest.raises(ImageDecodeError) as error:
            rle_runs_from_strings([bad], pixels)
        assert error.value.reason == "invalid_rle"

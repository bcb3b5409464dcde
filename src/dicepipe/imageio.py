"""Safe image decoding to RGB uint8 and deterministic PNG/JPEG encoding.

Every decode failure raises `ImageDecodeError` with a short machine-readable `reason`
(`empty`, `not_an_image`, `truncated`, `too_many_pixels`, `unsupported_mode`,
`undecodable`, `bad_exif`, `invalid_rle`), which is what the quarantine tables record.

EXIF is untrusted metadata: an Orientation tag that is not one of the integers 1-8 (a string,
a fraction, a list) is reported as orientation 0 and treated as upright, as image viewers do;
such an image is never kept byte for byte (see `canonical_image_bytes`), so no stored file
carries the bogus tag. The same goes for the 35 mm focal length (`exif_focal_px`).

COCO RLE masks are image data too: `rle_runs_from_strings` checks compressed RLE strings
completely (in numpy) before any native decoder sees them, and `rle_string` writes them.
"""

from __future__ import annotations

import io
import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000
_EXIF_ORIENTATION = 0x0112
_EXIF_IFD, _FOCAL_35MM = 0x8769, 0xA405
_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)


class ImageDecodeError(ValueError):
    """An image that cannot be decoded safely; `reason` is a short stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image plus what the container said about it."""

    rgb: np.ndarray  # (H, W, 3) uint8, EXIF orientation applied
    format: str  # PIL format name, e.g. "JPEG", "PNG"
    mode: str  # PIL mode before conversion, e.g. "RGB", "CMYK", "I;16", "P"
    orientation: int  # EXIF orientation 1-8 (1 = upright); 0: a tag that is not 1-8 (ignored)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode image bytes to upright RGB uint8, refusing anything unsafe or broken."""
    if not data:
        raise ImageDecodeError("empty", "zero-byte image")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageDecodeError("not_an_image", "bytes are not a known image format") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageDecodeError("too_many_pixels", str(error)) from None
        except (OSError, EOFError, SyntaxError, ValueError) as error:
            raise ImageDecodeError("truncated", f"header unreadable: {error}") from None
        width, height = image.size
        if width * height > max_pixels:
            raise ImageDecodeError(
                "too_many_pixels", f"{width}x{height} exceeds the limit of {max_pixels} pixels"
            )
        try:
            image.load()
        except (OSError, EOFError, SyntaxError, ValueError) as error:
            raise ImageDecodeError("truncated", f"pixel data unreadable: {error}") from None
        except Exception as error:  # noqa: BLE001 - a decoder failing on untrusted bytes
            message = f"{type(error).__name__}: {error}"
            raise ImageDecodeError("undecodable", message) from None
    orientation = exif_orientation(image)
    fmt, mode = image.format or "unknown", image.mode
    if orientation > 1:
        try:
            image = ImageOps.exif_transpose(image)
        except Exception as error:  # noqa: BLE001 - malformed EXIF on untrusted bytes
            raise ImageDecodeError("bad_exif", f"{type(error).__name__}: {error}") from None
    return DecodedImage(rgb=_to_rgb(image), format=fmt, mode=mode, orientation=orientation)


def exif_orientation(image: Image.Image) -> int:
    """The EXIF Orientation of an opened image: 1-8, 1 when absent, 0 when the tag holds
    anything but an integer 1-8 (treated as upright; never raises on malformed EXIF)."""
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF is no orientation
        return 0
    return _small_integer(value, 1, 8) or 0


def _small_integer(value: Any, lo: int, hi: int) -> int | None:
    """`value` as an int when it is a real number equal to an integer in [lo, hi], else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    if not math.isfinite(number) or number != int(number) or not lo <= number <= hi:
        return None
    return int(number)


def exif_focal_px(data: bytes, width: int, height: int) -> float | None:
    """Focal length in pixels from EXIF FocalLengthIn35mmFilm (Depth Pro's own rule:
    f_35 * diagonal_px / diagonal_35mm), or None when the tag is absent or not a positive
    number. Rotation does not change it (the diagonal is the same), so it may be computed
    from the original bytes and used with the upright image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                f35 = image.getexif().get_ifd(_EXIF_IFD).get(_FOCAL_35MM)
    except Exception:  # noqa: BLE001 - EXIF is optional metadata: unreadable means "no focal"
        return None
    f35 = _small_integer(f35, 1, 100_000)  # a SHORT in the EXIF standard
    if f35 is None:
        return None
    return float(f35) * math.hypot(width, height) / _FULL_FRAME_DIAGONAL_MM


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any PIL mode to RGB uint8; 16-bit keeps its 8 most significant bits."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.uint32)
        gray = (
            (values >> 8).astype(np.uint8)
            if values.max(initial=0) > 255
            else values.astype(np.uint8)
        )
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "F":
        raise ImageDecodeError("unsupported_mode", "floating-point images are not photographs")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Transparent pixels carry arbitrary colour; composite onto black so they are defined.
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def canonical_image_bytes(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[bytes, DecodedImage]:
    """Bytes that any reader decodes to exactly `decode_image(data).rgb`, plus that decode.

    Upright RGB JPEGs are kept byte for byte (never re-compressed); anything whose plain decode
    would differ (EXIF rotation, CMYK, palette, 16-bit, alpha) is re-encoded losslessly as PNG.
    """
    decoded = decode_image(data, max_pixels)
    if decoded.format == "JPEG" and decoded.mode == "RGB" and decoded.orientation == 1:
        return data, decoded  # (orientation 0, a bogus tag, is re-encoded without it)
    return encode_png(decoded.rgb), decoded


def resize_square(image: np.ndarray, resolution: int, nearest: bool = False) -> np.ndarray:
    """`image` resized to resolution x resolution, the one resize of training and inference:
    area averaging when shrinking, bilinear when enlarging, nearest neighbour for targets
    whose colours must stay exact (`nearest`)."""
    if image.shape[:2] == (resolution, resolution):
        return image
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif image.shape[0] * image.shape[1] > resolution * resolution:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(image, (resolution, resolution), interpolation=interpolation)


def encode_png(rgb: np.ndarray, compression: int = 6) -> bytes:
    """Encode an (H, W, 3) or (H, W) uint8 array as PNG, deterministically."""
    array = _check_uint8(rgb)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    """Encode an (H, W, 3) uint8 array as a baseline JPEG, deterministically."""
    array = cv2.cvtColor(_check_uint8(rgb), cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


def _check_uint8(array: np.ndarray) -> np.ndarray:
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] != 3)
    ):
        raise ValueError(f"expected uint8 (H, W) or (H, W, 3), got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)


def rle_runs_from_strings(texts: list[bytes], pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode many compressed COCO RLE strings (pycocotools' `rleFrString`) at once, checking
    each completely: 5-bit groups with a continuation bit (0x20), a sign bit (0x10) in a
    value's last group, and each run from the fourth on stored as a delta to the run two
    before it. Returns (all runs, runs per string); a string that is malformed or whose runs
    do not cover exactly `pixels` is ImageDecodeError `invalid_rle`, so native decoders only
    ever see RLEs that fit their buffer."""
    if not texts or not all(isinstance(t, bytes) and t for t in texts):
        raise ImageDecodeError("invalid_rle", "RLE counts must be non-empty strings")
    c = np.frombuffer(b"".join(texts), dtype=np.uint8) - np.uint8(48)  # below 48 wraps high
    text_ends = np.cumsum([len(t) for t in texts]) - 1
    if (c > 63).any() or (c[text_ends] & 0x20).any():
        raise ImageDecodeError("invalid_rle", "RLE string has bad characters or ends mid-value")
    ends = np.flatnonzero((c & 0x20) == 0)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 7:  # more than 35 bits: no image has runs that long
        raise ImageDecodeError("invalid_rle", "RLE string holds an impossibly long run")
    values = (c[starts] & 0x1F).astype(np.int64)
    longer = np.flatnonzero(lengths > 1)  # few: most values fit one character
    for k in range(1, int(lengths.max())):
        longer = longer[lengths[longer] > k]
        values[longer] += (c[starts[longer] + k] & 0x1F).astype(np.int64) << (5 * k)
    negative = np.flatnonzero(c[ends] & 0x10)
    values[negative] -= np.int64(1) << (5 * lengths[negative])
    bounds = np.searchsorted(ends, text_ends) + 1  # every string ends with a value
    first = np.concatenate(([0], bounds[:-1]))
    per_text = bounds - first
    local = np.arange(values.size) - np.repeat(first, per_text)
    odd = (local & 1).astype(bool)
    runs = values
    for select in (odd, ~odd & (local >= 2)):  # cumulative sums per parity, restarted per string
        part = np.where(select, values, 0)
        part[first[1:]] -= np.add.reduceat(part, first)[:-1]
        runs = np.where(select, np.cumsum(part), runs)
    bad = (np.add.reduceat(runs, first) != pixels) | (np.minimum.reduceat(runs, first) < 0)
    if bad.any():
        message = f"RLE {int(np.argmax(bad))} does not cover {pixels} pixels"
        raise ImageDecodeError("invalid_rle", message)
    return runs, per_text


def rle_string(runs: Any) -> str:
    """The compressed COCO RLE string of run lengths (pycocotools' `rleToString`)."""
    counts = [int(v) for v in runs]
    out = bytearray()
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append((c | 0x20 if more else c) + 48)
    return out.decode("ascii")


def rle_mask(runs: np.ndarray, height: int, width: int) -> np.ndarray:
    """The (height, width) boolean mask of checked runs (column-major, background first)."""
    flat = np.repeat(np.arange(runs.size) % 2 == 1, runs)
    return np.ascontiguousarray(flat.reshape(width, height).T)

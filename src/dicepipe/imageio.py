"""Safe image decoding to RGB uint8 and deterministic PNG/JPEG encoding.

Every decode failure raises `ImageDecodeError` with a short machine-readable `reason`
(`empty`, `not_an_image`, `truncated`, `too_many_pixels`, `unsupported_mode`,
`undecodable`), which is what
the quarantine tables record.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000
_EXIF_ORIENTATION = 0x0112


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
    orientation: int  # EXIF orientation tag (1 = upright, no transform needed)


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
    orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    fmt, mode = image.format or "unknown", image.mode
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
    return DecodedImage(rgb=_to_rgb(image), format=fmt, mode=mode, orientation=orientation)


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
        return data, decoded
    return encode_png(decoded.rgb), decoded


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

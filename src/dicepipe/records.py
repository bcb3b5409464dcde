"""Arrow schemas of every table the stages write, the item error, and label row decoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pyarrow as pa

# One row per sampled item: where it came from, its canonical image bytes, its annotations.
SAMPLE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),  # "<source>/<source_id>", unique across the corpus
        ("source", pa.string()),
        ("source_id", pa.string()),
        ("unit", pa.string()),  # the input shard it was read from
        ("origin", pa.string()),  # file path or URL, "tar_url::member" for tar members
        ("image", pa.binary()),  # canonical bytes (see imageio.canonical_image_bytes)
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("annotations", pa.string()),  # JSON list; SA-1B masks stay COCO RLE here
        # EXIF 35 mm focal length in pixels, read from the original bytes (which sample may
        # re-encode without EXIF); null when the file has none
        ("focal_px", pa.float64()),
        # the tasks the annotations feed, from the source's role (sample params): encode makes
        # a segmentation or pose example only for these
        ("tasks", pa.list_(pa.string())),
    ]
)

# One row per labelled item: raw labels at the image's resolution, little-endian float16.
LABEL_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("teacher", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("focal_px", pa.float32()),
        ("depth", pa.binary()),  # (H, W) float16 metric z-depth, NaN where unknown
        ("normals", pa.binary()),  # (H, W, 3) float16 camera-frame unit normals, or null
    ]
)

# One row per hair-matting composite: the pasted image and its point-segmentation labels.
COMPOSITE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),  # "composite/<index>"
        ("source", pa.string()),  # the foreground's dataset: p3m, am2k or aim500
        ("source_id", pa.string()),  # the composite index, zero-padded
        ("unit", pa.string()),
        ("origin", pa.string()),  # "<foreground key> on <background key or path>"
        ("image", pa.binary()),  # PNG
        ("alpha", pa.binary()),  # PNG, round(alpha * 255)
        ("target", pa.binary()),  # PNG, white where alpha > mask_threshold
        ("points", pa.list_(pa.list_(pa.float32()))),  # normalised (x, y) inside alpha > 0.5
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("meta", pa.string()),  # JSON: placement, background jitter, foreground key
    ]
)

# Every item that does not reach an output row ends here, with the reason.
QUARANTINE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),  # short stable code, e.g. "truncated", "missing_label"
        ("message", pa.string()),
    ]
)


def quarantine_row(key: str, stage: str, reason: str, message: str) -> dict[str, str]:
    """A row of the quarantine table."""
    return {"key": key, "stage": stage, "reason": reason, "message": message}


class ItemError(Exception):
    """An item that cannot be used; it becomes a quarantine row with `reason`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (ItemError, (self.reason, self.message))  # picklable for Dask workers


Result = TypeVar("Result")
Args = ParamSpec("Args")


def unexpected_error(error: BaseException) -> ItemError:
    """The quarantine error of an item whose processing failed in a way no check foresaw:
    reason `unexpected_error`, the exception's class and message in the message."""
    return ItemError("unexpected_error", f"{type(error).__name__}: {error}"[:2000])


def guard(
    work: Callable[Args, Result], *args: Args.args, **kwargs: Args.kwargs
) -> Result | ItemError:
    """`work(*args, **kwargs)` for one item, or the ItemError that quarantines the item when
    it fails: an ItemError (or subclass) it raises as it is, any other exception as
    `unexpected_error`. The one place where an item's failure becomes a quarantine reason:
    one item's fault never ends its unit, and never disappears."""
    try:
        return work(*args, **kwargs)
    except ItemError as error:
        return error
    except Exception as error:  # noqa: BLE001 - one item's fault never ends the unit
        return unexpected_error(error)


def decode_label_arrays(row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """(depth (H, W), normals (H, W, 3) or None) as float32 from a label row."""
    shape = (row["height"], row["width"])
    depth = np.frombuffer(row["depth"], "<f2").reshape(shape).astype(np.float32)
    if row["normals"] is None:
        return depth, None
    normals = np.frombuffer(row["normals"], "<f2").reshape((*shape, 3)).astype(np.float32)
    return depth, normals

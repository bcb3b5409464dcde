"""Byte-deterministic encoders for the synthetic sample corpus: JPEG, npz, tar, COCO RLE.

Every function returns bytes (or JSON-ready values) that depend only on its inputs, so a corpus
written twice with the same seed is identical file for file.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage

EXIF_ORIENTATION_TAG = 0x0112
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def jpeg_bytes(rgb: np.ndarray, quality: int = 90, orientation: int | None = None) -> bytes:
    """Baseline 4:2:0 JPEG of an (H, W, 3) uint8 array, optionally tagged with an EXIF
    Orientation (the pixels are stored as given)."""
    extra = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = orientation
        extra["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(
        buffer, "JPEG", quality=quality, subsampling=2, optimize=False, progressive=False, **extra
    )
    return buffer.getvalue()


def md5_base64(data: bytes) -> str:
    """The base64 of the MD5 digest, as in OpenImages' `OriginalMD5` column."""
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An `np.load`-readable .npz with fixed zip timestamps and sorted members (unlike
    np.savez_compressed, whose members carry the current time)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """An uncompressed PAX tar of `members`, sorted by name, with zeroed owner and time."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            info.mtime, info.mode, info.uid, info.gid = 0, 0o644, 0, 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(members[name]))
    return buffer.getvalue()


def encode_mask(mask: np.ndarray) -> tuple[dict, int, list[float]]:
    """COCO compressed RLE of a boolean mask (counts as str), its area and [x, y, w, h] bbox."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    area = int(mask_utils.area(rle))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    segmentation = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return segmentation, area, bbox


def interior_point(mask: np.ndarray, rng: np.random.Generator) -> list[float]:
    """A pixel centre (x + 0.5, y + 0.5) inside `mask`, away from its edge when possible, so
    rounding or flooring the coordinates lands inside the mask either way."""
    inner = ndimage.binary_erosion(mask, structure=np.ones((3, 3), dtype=bool))
    rows, cols = np.nonzero(inner if inner.any() else mask)
    pick = int(rng.integers(len(rows)))
    return [float(cols[pick]) + 0.5, float(rows[pick]) + 0.5]


def mask_annotations(instances: np.ndarray, rng: np.random.Generator, first_id: int) -> list[dict]:
    """SA-1B style annotations, one per non-empty instance id in increasing order."""
    height, width = instances.shape
    annotations = []
    for instance in np.unique(instances):
        if instance == 0:
            continue
        mask = instances == instance
        segmentation, area, bbox = encode_mask(mask)
        annotations.append(
            {
                "id": first_id + int(instance),
                "segmentation": segmentation,
                "area": area,
                "bbox": bbox,
                "predicted_iou": round(float(rng.uniform(0.85, 1.0)), 6),
                "stability_score": round(float(rng.uniform(0.85, 1.0)), 6),
                "point_coords": [interior_point(mask, rng)],
                "crop_box": [0.0, 0.0, float(width), float(height)],
            }
        )
    return annotations

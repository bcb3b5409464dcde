"""COCO: person keypoints and instances JSON (pycocotools) plus a folder or URL of images.

Annotations are converted at planning time: polygons and uncompressed RLE become compressed
RLE strings (checked to cover the image), keypoints stay flat [x, y, v, ...] lists. A selected
image whose record or annotations cannot be used is quarantined when its unit is read
(`bad_annotation`, `rle_size_mismatch`, `invalid_rle`, `bad_id`), never dropped.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import fsspec

from dicepipe.params import CocoParams, SampleParams
from dicepipe.sampling import bottom_k_items
from dicepipe.sources.common import (
    ItemError,
    Outcome,
    Unit,
    join_url,
    read_bytes,
    rle_runs,
    sample_row,
)

SOURCE = "coco"
READ_FIELDS: tuple[str, ...] = ()  # nothing but the unit itself changes what a unit writes


def load_coco(annotations_url: str) -> Any:
    """A `pycocotools.coco.COCO` index of an annotations JSON (local or fsspec URL); a file
    that is not COCO JSON is a ValueError naming it (there is no item to quarantine)."""
    from pycocotools.coco import COCO

    try:
        with fsspec.open(annotations_url, "rb") as handle:
            dataset = json.load(handle)
        coco = COCO()
        coco.dataset = dataset
        with redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
            coco.createIndex()
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{annotations_url}: not a COCO annotations file: {error!r}") from None
    return coco


def plan_units(params: CocoParams, seed: int) -> list[Unit]:
    """Select `params.n` images by seeded hash; units are fixed blocks of image-id order."""
    if params.n == 0:
        return []
    if not params.annotations:
        raise ValueError("sample.coco.annotations is empty, but sample.coco.n > 0")
    coco = load_coco(params.annotations)
    image_ids = sorted(coco.getImgIds(), key=_id_order)
    candidates = ((f"{SOURCE}/{source_id(i)}", (n, i)) for n, i in enumerate(image_ids))
    blocks: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for _, (number, image_id) in bottom_k_items(candidates, params.n, seed):
        info = image_info(coco, image_id)
        blocks.setdefault(number // params.block_images, []).append((source_id(image_id), info))
    return [
        Unit(SOURCE, f"{SOURCE}-{block:06d}", params.images, tuple(sorted(items)))
        for block, items in sorted(blocks.items())
    ]


def _id_order(image_id: Any) -> tuple[int, int, str]:
    return (0, image_id, "") if isinstance(image_id, int) else (1, 0, str(image_id))


def source_id(image_id: Any) -> str:
    """The item id of a COCO image: its integer id zero-padded to 12 digits, as in file names."""
    return f"{image_id:012d}" if isinstance(image_id, int) else str(image_id)


def image_info(coco: Any, image_id: Any) -> dict[str, Any]:
    """What reading one image needs: file name, size, converted annotations; or, for a record
    that cannot be used, {"error": reason, "message": ...} to quarantine it at read time."""
    try:
        image = coco.imgs[image_id]
        width, height = int(image["width"]), int(image["height"])
        file_name = check_relative_path(image["file_name"])
        annotations = [
            _annotation(coco, annotation, height, width)
            for annotation in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        ]
    except ItemError as error:
        return {"error": error.reason, "message": error.message}
    except (KeyError, TypeError, ValueError, IndexError) as error:
        return {"error": "bad_annotation", "message": f"{type(error).__name__}: {error}"}
    return {"file_name": file_name, "width": width, "height": height, "annotations": annotations}


def check_relative_path(name: Any) -> str:
    """`name` if it is a relative path inside the images root, else an ItemError `bad_id`."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        raise ItemError("bad_id", f"file name {name!r} is not a plain relative path")
    if posixpath.isabs(name) or ".." in name.split("/") or "://" in name:
        raise ItemError("bad_id", f"file name {name!r} leaves the images root")
    return name


def _annotation(coco: Any, annotation: dict[str, Any], height: int, width: int) -> dict:
    rle = coco.annToRLE(annotation)
    counts = rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"]
    size = [int(s) for s in rle["size"]]
    if size != [height, width]:
        raise ItemError("rle_size_mismatch", f"annotation {annotation['id']} has RLE size {size}")
    rle_runs(counts, height, width)  # raises invalid_rle for runs that do not cover the image
    keypoints = [float(v) for v in annotation.get("keypoints", [])]
    if len(keypoints) % 3:
        raise ItemError("bad_annotation", f"annotation {annotation['id']}: keypoints not x,y,v")
    return {
        "id": int(annotation["id"]),
        "category_id": int(annotation["category_id"]),
        "iscrowd": int(annotation.get("iscrowd", 0)),
        "bbox": [float(v) for v in annotation["bbox"]],
        "keypoints": keypoints,
        "num_keypoints": int(annotation.get("num_keypoints", 0)),
        "segmentation": {"size": size, "counts": counts},
    }


def iter_unit(unit: Unit, params: SampleParams) -> Iterator[Outcome]:
    """Fetch and validate every selected image of one block, in id order."""
    for image_id, info in unit.items:
        key = f"{SOURCE}/{image_id}"
        try:
            yield Outcome(key, row=_row(unit, image_id, info, params.max_pixels))
        except ItemError as error:
            yield Outcome(key, error=error)


def _row(unit: Unit, image_id: str, info: dict[str, Any], max_pixels: int) -> dict[str, Any]:
    if "error" in info:
        raise ItemError(info["error"], info["message"])
    url = join_url(unit.location, info["file_name"])
    data = read_bytes(url)
    row = sample_row(SOURCE, image_id, unit.name, url, data, info["annotations"], max_pixels)
    if (row["width"], row["height"]) != (info["width"], info["height"]):
        raise ItemError(
            "size_mismatch",
            f"image is {row['width']}x{row['height']}, annotations say"
            f" {info['width']}x{info['height']}",
        )
    return row

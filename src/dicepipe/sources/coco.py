"""COCO: person keypoints and instances JSON (pycocotools) plus a folder or URL of images."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from typing import Any

import fsspec

from dicepipe.params import CocoParams
from dicepipe.sampling import bottom_k_items
from dicepipe.sources.common import ItemError, Unit, join_url, read_bytes, sample_row

SOURCE = "coco"


def load_coco(annotations_url: str) -> Any:
    """A `pycocotools.coco.COCO` index of an annotations JSON (local or fsspec URL)."""
    from pycocotools.coco import COCO

    with fsspec.open(annotations_url, "rb") as handle:
        dataset = json.load(handle)
    coco = COCO()
    coco.dataset = dataset
    with redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
        coco.createIndex()
    return coco


def plan_units(params: CocoParams, seed: int) -> list[Unit]:
    """Select `params.n` images by seeded hash; units are fixed blocks of image-id order."""
    if params.n == 0 or not params.annotations:
        return []
    coco = load_coco(params.annotations)
    image_ids = sorted(coco.getImgIds())
    candidates = ((f"{SOURCE}/{i:012d}", (n, i)) for n, i in enumerate(image_ids))
    blocks: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for _, (number, image_id) in bottom_k_items(candidates, params.n, seed):
        info = _image_info(coco, image_id)
        blocks.setdefault(number // params.block_images, []).append((f"{image_id:012d}", info))
    return [
        Unit(SOURCE, f"{SOURCE}-{block:06d}", params.images, tuple(sorted(items)))
        for block, items in sorted(blocks.items())
    ]


def _image_info(coco: Any, image_id: int) -> dict[str, Any]:
    image = coco.imgs[image_id]
    annotations = []
    for annotation in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None)):
        rle = coco.annToRLE(annotation)
        counts = rle["counts"]
        annotations.append(
            {
                "id": int(annotation["id"]),
                "category_id": int(annotation["category_id"]),
                "iscrowd": int(annotation.get("iscrowd", 0)),
                "bbox": [float(v) for v in annotation["bbox"]],
                "keypoints": [float(v) for v in annotation.get("keypoints", [])],
                "num_keypoints": int(annotation.get("num_keypoints", 0)),
                "segmentation": {
                    "size": [int(s) for s in rle["size"]],
                    "counts": counts.decode() if isinstance(counts, bytes) else counts,
                },
            }
        )
    return {
        "file_name": image["file_name"],
        "width": int(image["width"]),
        "height": int(image["height"]),
        "annotations": annotations,
    }


def read_unit(unit: Unit, max_pixels: int) -> tuple[list[dict], list[tuple[str, ItemError]]]:
    """Fetch and validate every selected image of one block: (rows, [(key, error)])."""
    rows, errors = [], []
    for image_id, info in unit.items:
        url = join_url(unit.location, info["file_name"])
        try:
            data = read_bytes(url)
            row = sample_row(
                SOURCE, image_id, unit.name, url, data, info["annotations"], max_pixels
            )
            if (row["width"], row["height"]) != (info["width"], info["height"]):
                raise ItemError(
                    "size_mismatch",
                    f"image is {row['width']}x{row['height']}, annotations say"
                    f" {info['width']}x{info['height']}",
                )
            rows.append(row)
        except ItemError as error:
            errors.append((f"{SOURCE}/{image_id}", error))
    return rows, errors

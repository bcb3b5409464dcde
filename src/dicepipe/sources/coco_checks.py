"""One rule set for COCO annotations, shared by sampling (`sources.coco`) and evaluation
(`evaluate.benchmarks.coco`), checked before any of pycocotools' native code sees them.

Nothing reaches pycocotools unchecked (a segfault there cannot be caught): an image's
declared size must be positive whole numbers within `max_pixels`; ids and category ids whole
numbers; a bbox four finite numbers; an area, when given, a finite number >= 0; a polygon at
least three points of finite coordinates within one image side of the image (pycocotools
allocates by the perimeter and crashes the process on absurd coordinates); an RLE, compressed
or not, of the image's size with runs that cover it exactly; keypoints finite (x, y, v)
triples, v in 0/1/2, as many as the category names, labelled ones within the image's margin.

Every RLE string is decoded once, in numpy (`sources.common.rle_runs`): the runs that prove it
safe are the ones returned, from which a mask is built without decoding again
(`imageio.rle_mask`). A fault is an ItemError whose reason names it: `bad_image_record`,
`too_many_pixels`, `bad_id`, `duplicate_id`, `bad_annotation`, `bad_polygon`,
`polygon_too_few_points`, `polygon_out_of_bounds`, `rle_size_mismatch`, `invalid_rle`,
`bad_keypoints`, `keypoints_out_of_bounds`, `keypoint_count_mismatch`.
"""

from __future__ import annotations

import math
import posixpath
from typing import Any

import numpy as np

from dicepipe.imageio import rle_string
from dicepipe.records import ItemError
from dicepipe.sources.common import rle_runs, whole_number

VISIBILITY = (0, 1, 2)  # COCO keypoint flags: not labelled, labelled hidden, labelled visible


def image_size(image: dict[str, Any], max_pixels: int) -> tuple[int, int]:
    """(width, height) of an image record: positive whole numbers within `max_pixels`."""
    width, height = whole_number(image.get("width")), whole_number(image.get("height"))
    if width is None or height is None or width < 1 or height < 1:
        message = f"image size {image.get('width')!r} x {image.get('height')!r} is not positive"
        raise ItemError("bad_image_record", message)
    if width * height > max_pixels:
        message = f"declared size {width}x{height} exceeds the limit of {max_pixels} pixels"
        raise ItemError("too_many_pixels", message)
    return width, height


def check_relative_path(name: Any) -> str:
    """`name` if it is a relative path inside the images root, else an ItemError `bad_id`."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        raise ItemError("bad_id", f"file name {name!r} is not a plain relative path")
    if posixpath.isabs(name) or ".." in name.split("/") or "://" in name:
        raise ItemError("bad_id", f"file name {name!r} leaves the images root")
    return name


def finite_numbers(values: Any) -> bool:
    """Whether `values` is a list of finite ints and floats (no bools)."""
    return isinstance(values, list) and all(
        not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) for v in values
    )


def annotation_fields(annotation: Any) -> tuple[int, int, int, list[float]]:
    """(id, category id, iscrowd, bbox) of an annotation, checked."""
    if not isinstance(annotation, dict):
        raise ItemError("bad_annotation", f"an annotation is {type(annotation).__name__}")
    ann_id = whole_number(annotation.get("id"))
    category = whole_number(annotation.get("category_id"))
    if ann_id is None or category is None:
        message = f"annotation id {annotation.get('id')!r}, category {category!r}"
        raise ItemError("bad_annotation", f"{message}: both must be integers")
    crowd = whole_number(annotation.get("iscrowd", 0))
    bbox = annotation.get("bbox")
    if crowd not in (0, 1) or not finite_numbers(bbox) or len(bbox) != 4:
        message = f"annotation {ann_id}: iscrowd {annotation.get('iscrowd')!r}, bbox {bbox!r}"
        raise ItemError("bad_annotation", message[:300])
    return ann_id, category, crowd, [float(v) for v in bbox]


def area(annotation: dict[str, Any], ann_id: int) -> float | None:
    """The annotation's `area` (None when absent): a finite number >= 0."""
    if "area" not in annotation:
        return None
    value = annotation["area"]
    if not finite_numbers([value]) or value < 0:
        raise ItemError("bad_annotation", f"annotation {ann_id}: area {value!r} is not >= 0")
    return float(value)


def check_annotation(
    annotation: Any, height: int, width: int, categories: dict[Any, dict[str, Any]]
) -> tuple[dict[str, Any], np.ndarray]:
    """An annotation of a (height, width) image, checked and converted: (the record with
    its segmentation as a compressed RLE string and its keypoints recounted, its mask's runs).
    `categories` (by id) give each category's keypoint names."""
    ann_id, category, crowd, bbox = annotation_fields(annotation)
    area(annotation, ann_id)
    keypoints = check_keypoints(
        annotation.get("keypoints", []), ann_id, height, width, keypoint_count(categories, category)
    )
    counts, runs = segmentation_rle(annotation, ann_id, height, width)
    record = {
        "id": ann_id,
        "category_id": category,
        "iscrowd": crowd,
        "bbox": bbox,
        "keypoints": keypoints,
        "num_keypoints": sum(1 for v in keypoints[2::3] if v > 0),  # what pose targets read
        "segmentation": {"size": [height, width], "counts": counts},
    }
    return record, runs


def keypoint_count(categories: dict[Any, dict[str, Any]], category: Any) -> int | None:
    """How many keypoints the category names (None when it names none)."""
    names = categories.get(category, {}).get("keypoints")
    return len(names) if isinstance(names, list) and names else None


def check_annotation_set(annotations: list[dict[str, Any]]) -> None:
    """Checked annotations of one image: ids unique, every person with keypoints has the same
    number of them."""
    ids = [a["id"] for a in annotations]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ItemError("duplicate_id", f"annotation id {twice[0]} appears {ids.count(twice[0])}x")
    counts = sorted({len(a["keypoints"]) // 3 for a in annotations if a["keypoints"]})
    if len(counts) > 1:
        message = f"people with {', '.join(map(str, counts))} keypoints in one image"
        raise ItemError("keypoint_count_mismatch", message)


def _margin(height: int, width: int) -> int:
    """How far outside the image a coordinate may lie (annotations spill over edges a bit;
    anything farther is garbage, and would make pycocotools allocate without bound)."""
    return max(height, width)


def segmentation_rle(
    annotation: dict[str, Any], ann_id: int, height: int, width: int
) -> tuple[str, np.ndarray]:
    """(compressed RLE string, runs) of an annotation's polygons or RLE, validated first."""
    if "segmentation" not in annotation:
        raise ItemError("bad_annotation", f"annotation {ann_id} has no segmentation")
    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):
        return _polygons_rle(segmentation, ann_id, height, width)
    if not isinstance(segmentation, dict) or "counts" not in segmentation:
        message = f"annotation {ann_id}: segmentation is {str(segmentation)[:60]!r}"
        raise ItemError("bad_annotation", message)
    size = segmentation.get("size")
    if not isinstance(size, list) or [whole_number(v) for v in size] != [height, width]:
        raise ItemError("rle_size_mismatch", f"annotation {ann_id} has RLE size {size}")
    counts = segmentation["counts"]
    if isinstance(counts, bytes | bytearray):
        counts = bytes(counts).decode("ascii", "replace")
    try:
        runs = rle_runs(counts, height, width)  # every run checked to cover the image
    except ItemError as error:
        raise ItemError("invalid_rle", f"annotation {ann_id}: {error.message}") from None
    return (counts if isinstance(counts, str) else rle_string(runs)), runs


def check_polygons(polygons: list[Any], ann_id: int, height: int, width: int) -> None:
    """Polygons safe to rasterise: finite (x, y) pairs, >= 3 points, near the image."""
    if not polygons:
        raise ItemError("polygon_too_few_points", f"annotation {ann_id} has no polygon")
    margin = _margin(height, width)
    for number, polygon in enumerate(polygons):
        where = f"annotation {ann_id} polygon {number}"
        if not finite_numbers(polygon) or len(polygon) % 2:
            raise ItemError("bad_polygon", f"{where} is not finite x, y pairs: {polygon!r}"[:300])
        if len(polygon) < 6:
            points = len(polygon) // 2
            raise ItemError("polygon_too_few_points", f"{where} has {points} points, needs 3")
        xs, ys = polygon[0::2], polygon[1::2]
        if (
            min(xs) < -margin
            or max(xs) > width + margin
            or min(ys) < -margin
            or (max(ys) > height + margin)
        ):
            extent = f"x {min(xs):.6g}..{max(xs):.6g}, y {min(ys):.6g}..{max(ys):.6g}"
            message = f"{where} spans {extent}, far outside the {width}x{height} image"
            raise ItemError("polygon_out_of_bounds", message)


def _polygons_rle(
    polygons: list[Any], ann_id: int, height: int, width: int
) -> tuple[str, np.ndarray]:
    from pycocotools import mask as mask_utils

    check_polygons(polygons, ann_id, height, width)
    clean = [[float(v) for v in polygon] for polygon in polygons]
    rle = mask_utils.merge(mask_utils.frPyObjects(clean, height, width))
    counts = rle["counts"].decode()
    return counts, rle_runs(counts, height, width)  # what pycocotools made covers the image


def check_keypoints(
    values: Any, ann_id: int, height: int, width: int, expected: int | None
) -> list[float]:
    """Flat [x, y, v, ...] keypoints, checked: finite numbers in triples, v in 0/1/2, as many
    as `expected` (the category's names), labelled ones within the image's margin."""
    if values is None or values == []:
        return []
    where = f"annotation {ann_id} keypoints"
    if not finite_numbers(values) or len(values) % 3:
        raise ItemError("bad_keypoints", f"{where} are not finite x, y, v triples"[:300])
    count = len(values) // 3
    if expected is not None and count != expected:
        raise ItemError("bad_keypoints", f"{where}: {count} keypoints, the category has {expected}")
    flags = values[2::3]
    if any(v not in VISIBILITY for v in flags):
        raise ItemError("bad_keypoints", f"{where}: visibility flags {sorted(set(flags))}")
    margin = _margin(height, width)
    for x, y, v in zip(values[0::3], values[1::3], flags, strict=True):
        if v > 0 and not (-margin <= x <= width + margin and -margin <= y <= height + margin):
            message = f"{where}: ({x:.6g}, {y:.6g}) is far outside the {width}x{height} image"
            raise ItemError("keypoints_out_of_bounds", message)
    return [float(v) for v in values]


def record_id(url: str, name: str, number: int, record: Any, key: str = "id") -> Any:
    """The image id a record belongs to: an int or a non-empty string, else a ValueError."""
    value = record.get(key) if isinstance(record, dict) else None
    if not is_image_id(value) or value == "":
        raise ValueError(f"{url}: {name}[{number}] has no usable `{key}` ({value!r})")
    return value


def is_image_id(value: Any) -> bool:
    """Whether `value` can be a COCO image or category id: an int or a string."""
    return type(value) is int or isinstance(value, str)


def id_order(image_id: Any) -> tuple[int, int, str]:
    """Sort key of image ids: integers in order, then strings."""
    return (0, image_id, "") if isinstance(image_id, int) else (1, 0, str(image_id))

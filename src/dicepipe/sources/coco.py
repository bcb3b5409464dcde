"""COCO-format datasets (COCO 2017 keypoints, COCO-Rem, EntityV2): an annotations JSON plus a
folder or URL of images, each dataset under its own name and with its role (`CocoParams`).

The annotations file is streamed, never loaded whole (COCO-Rem's is hundreds of MB): planning
reads it once keeping only the image ids and the file's sha256; each unit reads it again for
its own images' records. Annotations are validated, then converted when the unit is read:
polygons (rasterised by
pycocotools) and uncompressed RLE become compressed RLE strings checked to cover the image,
keypoints stay flat [x, y, v, ...] lists. Nothing reaches pycocotools' native code unchecked:
an image's declared size must be positive whole numbers within `max_pixels`; a polygon needs at
least three points, finite coordinates within one image side of the image (pycocotools
allocates by the perimeter and crashes the process on absurd coordinates); an uncompressed
RLE must be of the image's size and its runs must cover it exactly.

A selected image whose record or annotations cannot be used is quarantined when its unit is
read, never dropped, with a reason naming the fault: `bad_image_record` (size), `bad_id` (file
name), `duplicate_id` (an image or annotation id twice), `bad_annotation` (fields of the wrong
type), `bad_polygon`, `polygon_too_few_points`, `polygon_out_of_bounds`, `rle_size_mismatch`,
`invalid_rle`, `bad_keypoints`, `keypoints_out_of_bounds`, `keypoint_count_mismatch` (people
of one image with different numbers of keypoints). A file that is not COCO JSON at all, nests
too deeply, or holds records that belong to no image, is a ValueError naming it (there is no
item to quarantine).
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicepipe.imageio import DEFAULT_MAX_PIXELS, rle_string
from dicepipe.params import CocoParams, SampleParams
from dicepipe.sampling import bottom_k_items
from dicepipe.sources.coco_index import IndexedFile, annotation_index, read_records
from dicepipe.sources.coco_index import image_ids as indexed_image_ids
from dicepipe.sources.coco_stream import stream_coco
from dicepipe.sources.common import (
    ItemError,
    Outcome,
    Unit,
    join_url,
    read_bytes,
    rle_runs,
    sample_row,
    unexpected_error,
    whole_number,
)

SOURCE = "coco"  # the reader of every COCO-format dataset; each dataset has its own name
READ_FIELDS: tuple[str, ...] = ()  # nothing but the unit itself changes what a unit writes
VISIBILITY = (0, 1, 2)  # COCO keypoint flags: not labelled, labelled hidden, labelled visible


@dataclass
class CocoIndex:
    """The records of a unit's images, by image id (duplicates kept, to report)."""

    images: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    annotations: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    categories: dict[Any, dict[str, Any]] = field(default_factory=dict)


def scan_image_ids(
    annotations_url: str, tasks: tuple[str, ...] | None = None
) -> tuple[list[Any], str]:
    """The image ids of an annotations file and the file's sha256, in one streamed read that
    keeps nothing but ids. With `tasks`, only images holding an annotation that serves one of
    them (`serves`) are returned. Every annotation must name its image by a usable id; a file
    that is not COCO JSON, or holds a record without one, is a ValueError naming the file."""
    image_ids: list[Any] = []
    served: set[Any] = set()

    def on_image(number: int, record: Any) -> None:
        image_ids.append(_record_id(annotations_url, "images", number, record))

    def on_annotation(number: int, record: Any) -> None:
        image_id = _record_id(annotations_url, "annotations", number, record, "image_id")
        if tasks is not None and serves(record, tasks):
            served.add(image_id)

    callbacks = {"images": on_image, "annotations": on_annotation}
    digest, counts = stream_coco(annotations_url, callbacks)
    if not counts["images"]:
        raise ValueError(f"{annotations_url}: not a COCO annotations file (no `images` records)")
    if tasks is not None:
        image_ids = [image_id for image_id in image_ids if image_id in served]
    return image_ids, digest


def serves(annotation: dict[str, Any], tasks: tuple[str, ...]) -> bool:
    """Whether an annotation can feed one of `tasks`: any annotation feeds the segmentation
    tasks (its mask is checked later); pose needs labelled keypoints (`num_keypoints` > 0)."""
    if any(task != "pose" for task in tasks):
        return True
    labelled = annotation.get("num_keypoints")
    return not isinstance(labelled, bool) and isinstance(labelled, int | float) and labelled > 0


def read_index(annotations_url: str, image_ids: set[Any], sha256: str) -> CocoIndex:
    """The image records and annotations of `image_ids` and every category, streamed from the
    annotations file; a ValueError when the file is no longer the one planned (`sha256`)."""
    index = CocoIndex()

    def keep(table: dict[Any, list[dict[str, Any]]], record: Any, key: str) -> None:
        owner = record.get(key) if isinstance(record, dict) else None
        if _hashable(owner) and owner in image_ids:
            table.setdefault(owner, []).append(record)

    def on_category(number: int, category: Any) -> None:
        if isinstance(category, dict) and _hashable(category.get("id")):
            index.categories.setdefault(category["id"], category)

    callbacks = {
        "images": lambda number, record: keep(index.images, record, "id"),
        "annotations": lambda number, record: keep(index.annotations, record, "image_id"),
        "categories": on_category,
    }
    digest, _ = stream_coco(annotations_url, callbacks)
    if digest != sha256:
        raise ValueError(
            f"{annotations_url} changed after the sample was planned (sha256 {digest[:12]},"
            f" planned {sha256[:12]}): run the stage again"
        )
    return index


def unit_records(unit: Unit, wanted: set[Any]) -> CocoIndex:
    """The records of a unit's images: from the file's index when it was planned with one
    (only the row groups of its images), else streamed from the annotations file."""
    if unit.index:
        return CocoIndex(*read_records(IndexedFile(unit.index, unit.annotations_sha256), wanted))
    return read_index(unit.annotations, wanted, unit.annotations_sha256)


def _record_id(url: str, name: str, number: int, record: Any, key: str = "id") -> Any:
    """The image id a record belongs to: an int or a non-empty string, else a ValueError."""
    value = record.get(key) if isinstance(record, dict) else None
    if not _hashable(value) or value == "":
        raise ValueError(f"{url}: {name}[{number}] has no usable `{key}` ({value!r})")
    return value


def _hashable(value: Any) -> bool:
    return type(value) is int or isinstance(value, str)


def plan_units(params: CocoParams, seed: int, index_dir: Path | None = None) -> list[Unit]:
    """Select `params.n` images of one COCO-format dataset by seeded hash; units are fixed
    blocks of image-id order, keyed `<name>/<id>`. With `only_annotated`, the candidates are
    the images with an annotation for the dataset's role (COCO's keypoints file lists every
    train image, half of them without a person). Planning holds only image ids. With
    `index_dir`, the file is indexed there once (`coco_index`): later plans read only the
    index, and each unit reads its own images' records from it; without, each unit streams
    the annotations file again for its own images (`iter_unit`)."""
    if params.n == 0:
        return []
    if not params.annotations:
        raise ValueError(f"sample.coco dataset {params.name}: annotations is empty, but n > 0")
    role = tuple(params.tasks) if params.only_annotated else None
    index = None
    if index_dir is None:
        image_ids, digest = scan_image_ids(params.annotations, role)
    else:
        index = annotation_index(params.annotations, index_dir)
        only = None if role is None else "annotated" if serves({}, role) else "posed"
        image_ids, digest = indexed_image_ids(index, only), index.sha256
    same_item: dict[str, list[Any]] = {}  # 7 and "000000000007" are one item id
    for image_id in sorted(set(image_ids), key=_id_order):
        same_item.setdefault(source_id(image_id), []).append(image_id)
    del image_ids
    numbered = enumerate(same_item.items())
    candidates = ((f"{params.name}/{item}", (n, ids)) for n, (item, ids) in numbered)
    blocks: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for _, (number, ids) in bottom_k_items(candidates, params.n, seed):
        item = (source_id(ids[0]), {"image_ids": ids})
        blocks.setdefault(number // params.block_images, []).append(item)
    return [
        Unit(
            params.name,
            f"{params.name}-{block:06d}",
            params.images,
            tuple(sorted(items)),
            tasks=tuple(params.tasks),
            reader=SOURCE,
            annotations=params.annotations,
            annotations_sha256=digest,
            index=index.folder if index is not None else "",
        )
        for block, items in sorted(blocks.items())
    ]


def _id_order(image_id: Any) -> tuple[int, int, str]:
    return (0, image_id, "") if isinstance(image_id, int) else (1, 0, str(image_id))


def source_id(image_id: Any) -> str:
    """The item id of a COCO image: its integer id zero-padded to 12 digits, as in file names."""
    return f"{image_id:012d}" if isinstance(image_id, int) else str(image_id)


def image_info(index: CocoIndex, image_id: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    """What reading one image needs: file name, size, converted annotations; or, for a record
    that cannot be used, {"error": reason, "message": ...} to quarantine it at read time."""
    try:
        records = index.images[image_id]
        if len(records) > 1:
            raise ItemError("duplicate_id", f"image id {image_id!r} has {len(records)} records")
        image = records[0]
        width, height = _image_size(image, max_pixels)
        file_name = check_relative_path(image.get("file_name"))
        annotations = [
            _annotation(annotation, height, width, index.categories)
            for annotation in index.annotations.get(image_id, [])
        ]
        _check_annotation_set(annotations)
    except ItemError as error:
        return {"error": error.reason, "message": error.message}
    return {"file_name": file_name, "width": width, "height": height, "annotations": annotations}


def _image_size(image: dict[str, Any], max_pixels: int) -> tuple[int, int]:
    width, height = whole_number(image.get("width")), whole_number(image.get("height"))
    if width is None or height is None or width < 1 or height < 1:
        message = f"image size {image.get('width')!r} x {image.get('height')!r} is not positive"
        raise ItemError("bad_image_record", message)
    if width * height > max_pixels:
        message = f"declared size {width}x{height} exceeds the limit of {max_pixels} pixels"
        raise ItemError("too_many_pixels", message)
    return width, height


def _finite_numbers(values: Any) -> bool:
    return isinstance(values, list) and all(
        not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) for v in values
    )


def _check_annotation_set(annotations: list[dict[str, Any]]) -> None:
    """Ids unique within the image; every person with keypoints has the same number."""
    ids = [a["id"] for a in annotations]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ItemError("duplicate_id", f"annotation id {twice[0]} appears {ids.count(twice[0])}x")
    counts = sorted({len(a["keypoints"]) // 3 for a in annotations if a["keypoints"]})
    if len(counts) > 1:
        message = f"people with {', '.join(map(str, counts))} keypoints in one image"
        raise ItemError("keypoint_count_mismatch", message)


def check_relative_path(name: Any) -> str:
    """`name` if it is a relative path inside the images root, else an ItemError `bad_id`."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        raise ItemError("bad_id", f"file name {name!r} is not a plain relative path")
    if posixpath.isabs(name) or ".." in name.split("/") or "://" in name:
        raise ItemError("bad_id", f"file name {name!r} leaves the images root")
    return name


def _annotation(
    annotation: Any, height: int, width: int, categories: dict[Any, dict[str, Any]]
) -> dict[str, Any]:
    if not isinstance(annotation, dict):
        raise ItemError("bad_annotation", f"an annotation is {type(annotation).__name__}")
    ann_id = whole_number(annotation.get("id"))
    category = whole_number(annotation.get("category_id"))
    if ann_id is None or category is None:
        message = f"annotation id {annotation.get('id')!r}, category {category!r}"
        raise ItemError("bad_annotation", f"{message}: both must be integers")
    crowd = whole_number(annotation.get("iscrowd", 0))
    bbox = annotation.get("bbox")
    if crowd not in (0, 1) or not _finite_numbers(bbox) or len(bbox) != 4:
        message = f"annotation {ann_id}: iscrowd {annotation.get('iscrowd')!r}, bbox {bbox!r}"
        raise ItemError("bad_annotation", message[:300])
    names = categories.get(category, {}).get("keypoints")
    expected = len(names) if isinstance(names, list) and names else None
    keypoints = _keypoints(annotation.get("keypoints", []), ann_id, height, width, expected)
    labelled = sum(1 for v in keypoints[2::3] if v > 0)
    return {
        "id": ann_id,
        "category_id": category,
        "iscrowd": crowd,
        "bbox": [float(v) for v in bbox],
        "keypoints": keypoints,
        "num_keypoints": labelled,  # recounted: what encode's pose target reads
        "segmentation": {
            "size": [height, width],
            "counts": _segmentation_counts(annotation, ann_id, height, width),
        },
    }


def _margin(height: int, width: int) -> int:
    """How far outside the image a coordinate may lie (annotations spill over edges a bit;
    anything farther is garbage, and would make pycocotools allocate without bound)."""
    return max(height, width)


def _segmentation_counts(annotation: dict[str, Any], ann_id: int, height: int, width: int) -> str:
    """The compressed RLE string of an annotation's polygons or RLE, validated first."""
    if "segmentation" not in annotation:
        raise ItemError("bad_annotation", f"annotation {ann_id} has no segmentation")
    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):
        return _polygons_counts(segmentation, ann_id, height, width)
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
    return counts if isinstance(counts, str) else rle_string(runs)


def _polygons_counts(polygons: list[Any], ann_id: int, height: int, width: int) -> str:
    from pycocotools import mask as mask_utils

    if not polygons:
        raise ItemError("polygon_too_few_points", f"annotation {ann_id} has no polygon")
    margin = _margin(height, width)
    for number, polygon in enumerate(polygons):
        where = f"annotation {ann_id} polygon {number}"
        if not _finite_numbers(polygon) or len(polygon) % 2:
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
    clean = [[float(v) for v in polygon] for polygon in polygons]
    rle = mask_utils.merge(mask_utils.frPyObjects(clean, height, width))
    counts = rle["counts"].decode()
    rle_runs(counts, height, width)  # what pycocotools made covers the image
    return counts


def _keypoints(
    values: Any, ann_id: int, height: int, width: int, expected: int | None
) -> list[float]:
    """Flat [x, y, v, ...] keypoints, checked: finite numbers in triples, v in 0/1/2, as many
    as the category names, labelled ones within the image's margin."""
    if values is None or values == []:
        return []
    where = f"annotation {ann_id} keypoints"
    if not _finite_numbers(values) or len(values) % 3:
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


def iter_unit(unit: Unit, params: SampleParams) -> Iterator[Outcome]:
    """Stream the unit's records from the annotations file, then fetch and validate every
    selected image of the block, in id order."""
    wanted = {image_id for _, info in unit.items for image_id in info["image_ids"]}
    index = unit_records(unit, wanted)
    for item_id, info in unit.items:
        key = f"{unit.source}/{item_id}"
        try:
            yield Outcome(key, row=_row(unit, item_id, _info(index, info, params), params))
        except ItemError as error:
            yield Outcome(key, error=error)
        except Exception as error:  # noqa: BLE001 - one item's fault never ends the unit
            yield Outcome(key, error=unexpected_error(error))


def _info(index: CocoIndex, info: dict[str, Any], params: SampleParams) -> dict[str, Any]:
    ids = info["image_ids"]
    if len(ids) > 1:
        return {"error": "duplicate_id", "message": f"image ids {ids!r} name the same item"}
    return image_info(index, ids[0], params.max_pixels)


def _row(unit: Unit, item_id: str, info: dict[str, Any], params: SampleParams) -> dict[str, Any]:
    if "error" in info:
        raise ItemError(info["error"], info["message"])
    url = join_url(unit.location, info["file_name"])
    data = read_bytes(url)
    row = sample_row(
        unit.source,
        item_id,
        unit.name,
        url,
        data,
        info["annotations"],
        params.max_pixels,
        tasks=unit.tasks,
    )
    if (row["width"], row["height"]) != (info["width"], info["height"]):
        raise ItemError(
            "size_mismatch",
            f"image is {row['width']}x{row['height']}, annotations say"
            f" {info['width']}x{info['height']}",
        )
    return row

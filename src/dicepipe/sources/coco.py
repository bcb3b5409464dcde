"""COCO-format datasets (COCO 2017 keypoints, COCO-Rem, EntityV2): an annotations JSON plus a
folder or URL of images, each dataset under its own name and with its role (`CocoParams`).

The annotations file is streamed, never loaded whole (COCO-Rem's is hundreds of MB): planning
reads it once keeping only the image ids and the file's sha256; each unit reads it again for
its own images' records. Annotations are validated and converted when the unit is read, by
the rules of `coco_checks` (shared with evaluation): polygons (rasterised by pycocotools) and
uncompressed RLE become compressed RLE strings checked to cover the image, keypoints stay
flat [x, y, v, ...] lists; nothing reaches pycocotools' native code unchecked.

A selected image whose record or annotations cannot be used is quarantined when its unit is
read, never dropped, with a reason naming the fault (listed in `coco_checks`; `duplicate_id`
also for an image id twice, `size_mismatch` for an image whose pixels differ from its
record). A file that is not COCO JSON at all, nests too deeply, or holds records that belong
to no image, is a ValueError naming it (there is no item to quarantine).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dicepipe.imageio import DEFAULT_MAX_PIXELS
from dicepipe.params.sample import CocoParams, SampleParams
from dicepipe.sampling import bottom_k_items
from dicepipe.sources import coco_checks as checks
from dicepipe.sources.coco_index import IndexedFile, annotation_index, read_records
from dicepipe.sources.coco_index import image_ids as indexed_image_ids
from dicepipe.sources.coco_stream import stream_coco
from dicepipe.sources.common import (
    ItemError,
    Outcome,
    Unit,
    join_url,
    read_bytes,
    row_outcome,
    sample_row,
)
from dicepipe.storage import Location

SOURCE = "coco"  # the reader of every COCO-format dataset; each dataset has its own name
READ_FIELDS: tuple[str, ...] = ()  # nothing but the unit itself changes what a unit writes


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
        image_ids.append(checks.record_id(annotations_url, "images", number, record))

    def on_annotation(number: int, record: Any) -> None:
        image_id = checks.record_id(annotations_url, "annotations", number, record, "image_id")
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
        if checks.is_image_id(owner) and owner in image_ids:
            table.setdefault(owner, []).append(record)

    def on_category(number: int, category: Any) -> None:
        if isinstance(category, dict) and checks.is_image_id(category.get("id")):
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


def plan_units(params: CocoParams, seed: int, index_dir: Location | None = None) -> list[Unit]:
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
    for image_id in sorted(set(image_ids), key=checks.id_order):
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
        width, height = checks.image_size(image, max_pixels)
        file_name = checks.check_relative_path(image.get("file_name"))
        annotations = [
            checks.check_annotation(annotation, height, width, index.categories)[0]
            for annotation in index.annotations.get(image_id, [])
        ]
        checks.check_annotation_set(annotations)
    except ItemError as error:
        return {"error": error.reason, "message": error.message}
    return {"file_name": file_name, "width": width, "height": height, "annotations": annotations}


def iter_unit(unit: Unit, params: SampleParams) -> Iterator[Outcome]:
    """Stream the unit's records from the annotations file, then fetch and validate every
    selected image of the block, in id order."""
    wanted = {image_id for _, info in unit.items for image_id in info["image_ids"]}
    index = unit_records(unit, wanted)
    for item_id, info in unit.items:
        yield row_outcome(f"{unit.source}/{item_id}", _row, unit, item_id, index, info, params)


def _info(index: CocoIndex, info: dict[str, Any], params: SampleParams) -> dict[str, Any]:
    ids = info["image_ids"]
    if len(ids) > 1:
        return {"error": "duplicate_id", "message": f"image ids {ids!r} name the same item"}
    return image_info(index, ids[0], params.max_pixels)


def _row(
    unit: Unit, item_id: str, index: CocoIndex, ids: dict[str, Any], params: SampleParams
) -> dict[str, Any]:
    info = _info(index, ids, params)
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

"""COCO 2017 val: images (folder, tar or `val2017.zip`) plus instances and/or person
keypoints JSON (`instances_val2017.json`, `person_keypoints_val2017.json`), via pycocotools.

Image records and annotations are checked by the rules the sampling stage uses
(`dicepipe.sources.coco_checks`) before pycocotools' native code sees them; each RLE string is
decoded once, and masks are built from the checked runs. A fault is a BenchmarkReadError
naming the image and the annotation.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from dicepipe.evaluate.benchmarks.archive import Archive, check_shape, decode_rgb
from dicepipe.evaluate.benchmarks.sample import (
    BenchmarkReadError,
    BenchmarkSample,
    Instances,
    People,
)
from dicepipe.imageio import DEFAULT_MAX_PIXELS, rle_mask
from dicepipe.records import ItemError
from dicepipe.sources import coco_checks as checks


def load_coco_json(path: str | Path) -> Any:  # pycocotools.coco.COCO
    """A pycocotools COCO index of an annotations JSON, its image records checked."""
    from pycocotools.coco import COCO

    path = Path(path)
    try:
        dataset = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise BenchmarkReadError(f"{path}: not a readable JSON file: {error}") from None
    if not isinstance(dataset, dict) or not all(
        isinstance(dataset.get(key), list) for key in ("images", "annotations", "categories")
    ):
        raise BenchmarkReadError(f"{path}: not COCO annotations (images/annotations/categories)")
    for record in dataset["images"]:
        _check_image_record(record, path)
    coco = COCO()
    coco.dataset = dataset
    try:
        with redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
            coco.createIndex()
    except (KeyError, TypeError) as error:
        raise BenchmarkReadError(f"{path}: malformed COCO annotations: {error!r}") from None
    return coco


def read_coco(
    images: str | Path,
    instances_json: str | Path | None = None,
    keypoints_json: str | Path | None = None,
    *,
    image_ids: Sequence[int] | None = None,
    prefix: str = "",
    limit: int | None = None,
) -> Iterator[BenchmarkSample]:
    """Lazily yield COCO samples (benchmark "coco") in image-id order (or `image_ids`'), with
    instance masks and/or person keypoints; images are read from the folder, tar or zip
    `images` at `prefix` + file_name (e.g. prefix "val2017/" inside val2017.zip)."""
    indexes = [load_coco_json(p) for p in (instances_json, keypoints_json) if p is not None]
    if not indexes:
        raise ValueError("read_coco needs instances_json and/or keypoints_json")
    instances = indexes[0] if instances_json is not None else None
    keypoints = indexes[-1] if keypoints_json is not None else None
    ids = sorted(indexes[0].imgs) if image_ids is None else [int(i) for i in image_ids]
    for index in indexes:
        missing = [i for i in ids if i not in index.imgs]
        if missing:
            raise BenchmarkReadError(f"image ids {missing[:5]} are not in every annotations file")
    with Archive(images) as archive:
        for image_id in islice(ids, limit):
            record = indexes[0].imgs[image_id]
            member = prefix + record["file_name"]
            rgb = decode_rgb(archive.read(member), member)
            check_shape(rgb, (record["height"], record["width"], 3), member, "the image")
            yield BenchmarkSample(
                record["file_name"],
                "coco",
                rgb,
                instances=None if instances is None else _instances(instances, image_id, member),
                people=None if keypoints is None else _people(keypoints, image_id, member),
                image_id=image_id,
            )


def _instances(coco: Any, image_id: int, member: str) -> Instances:
    record = coco.imgs[image_id]
    height, width = record["height"], record["width"]
    annotations = coco.imgToAnns.get(image_id, [])
    masks = np.zeros((len(annotations), height, width), bool)
    categories, crowd, areas = [], [], []
    with _read_errors(member):
        for row, annotation in enumerate(annotations):
            ann_id, category, iscrowd, _ = checks.annotation_fields(annotation)
            _, runs = checks.segmentation_rle(annotation, ann_id, height, width)
            masks[row] = rle_mask(runs, height, width)  # the checked runs: decoded once
            areas.append(checks.area(annotation, ann_id) or 0.0)
            categories.append(category)
            crowd.append(bool(iscrowd))
    return Instances(
        masks, np.array(categories, np.int64), np.array(crowd, bool), np.array(areas, np.float64)
    )


def _people(coco: Any, image_id: int, member: str) -> People:
    record = coco.imgs[image_id]
    people = []
    with _read_errors(member):
        for annotation in coco.imgToAnns.get(image_id, []):
            if "keypoints" in annotation:
                people.append(_person(annotation, record["height"], record["width"], coco.cats))
        checks.check_annotation_set(people)
    k = len(people[0]["keypoints"]) // 3 if people else 17
    return People(
        np.array([p["keypoints"] for p in people], np.float64).reshape(-1, k, 3),
        np.array([p["area"] for p in people], np.float64),
        np.array([p["bbox"] for p in people], np.float64).reshape(-1, 4),
        np.array([bool(p["iscrowd"]) for p in people], bool),
    )


def _person(annotation: Any, height: int, width: int, categories: dict) -> dict[str, Any]:
    """A person annotation's checked fields, with at least one keypoint."""
    ann_id, category, iscrowd, bbox = checks.annotation_fields(annotation)
    expected = checks.keypoint_count(categories, category)
    keypoints = checks.check_keypoints(annotation["keypoints"], ann_id, height, width, expected)
    if not keypoints:
        raise ItemError("bad_keypoints", f"annotation {ann_id} has no keypoints")
    area = checks.area(annotation, ann_id) or 0.0
    return {"id": ann_id, "iscrowd": iscrowd, "bbox": bbox, "keypoints": keypoints, "area": area}


@contextmanager
def _read_errors(where: str) -> Iterator[None]:
    """A failed COCO check as a BenchmarkReadError naming `where` (an image or a file)."""
    try:
        yield
    except ItemError as error:
        raise BenchmarkReadError(f"{where}: {error.message}") from None


def _check_image_record(record: Any, path: Path) -> None:
    """An image record as pycocotools needs it: an int id, a relative file name and a size
    of positive whole numbers (stored back as ints)."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), int):
        raise BenchmarkReadError(f"{path}: bad image record {str(record)[:200]}")
    with _read_errors(f"{path}: image {record['id']}"):
        checks.check_relative_path(record.get("file_name"))
        record["width"], record["height"] = checks.image_size(record, DEFAULT_MAX_PIXELS)

"""COCO 2017 val: images (folder, tar or `val2017.zip`) plus instances and/or person
keypoints JSON (`instances_val2017.json`, `person_keypoints_val2017.json`), via pycocotools.

Every annotation is checked before pycocotools' native code decodes it: polygons must be
finite with >= 3 points, RLE must have the image's size and run lengths that add up to it
(pycocotools' decoder does not bound-check), keypoints must be finite (x, y, v) triples.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from contextlib import redirect_stdout
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from dicepipe.evaluate.benchmarks.archive import Archive, check_shape, decode_rgb
from dicepipe.evaluate.benchmarks.coco_checks import check_keypoints, check_segmentation
from dicepipe.evaluate.benchmarks.sample import (
    BenchmarkReadError,
    BenchmarkSample,
    Instances,
    People,
)


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
    size = (record["height"], record["width"])
    annotations = coco.imgToAnns.get(image_id, [])
    masks = np.zeros((len(annotations), *size), bool)
    for row, annotation in enumerate(annotations):
        where = f"{member} annotation {annotation.get('id')}"
        check_segmentation(annotation.get("segmentation"), size, where)
        masks[row] = coco.annToMask(annotation).astype(bool)
    return Instances(
        masks,
        np.array([int(a["category_id"]) for a in annotations], np.int64),
        np.array([bool(a.get("iscrowd", 0)) for a in annotations], bool),
        _areas(annotations, member),
    )


def _people(coco: Any, image_id: int, member: str) -> People:
    annotations = [a for a in coco.imgToAnns.get(image_id, []) if "keypoints" in a]
    points = [check_keypoints(a, f"{member} annotation {a.get('id')}") for a in annotations]
    k = points[0].shape[0] if points else 17
    if any(p.shape[0] != k for p in points):
        raise BenchmarkReadError(f"{member}: people have different numbers of keypoints")
    return People(
        np.stack(points) if points else np.zeros((0, k, 3)),
        _areas(annotations, member),
        np.array([a.get("bbox", [0, 0, 0, 0]) for a in annotations], np.float64).reshape(-1, 4),
        np.array([bool(a.get("iscrowd", 0)) for a in annotations], bool),
    )


def _areas(annotations: list[dict[str, Any]], member: str) -> np.ndarray:
    areas = np.array([a.get("area", 0.0) for a in annotations], dtype=object)
    try:
        values = areas.astype(np.float64)
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if not (np.isfinite(values).all() and (values >= 0).all()):
        raise BenchmarkReadError(f"{member}: annotation areas must be finite and >= 0")
    return values


def _check_image_record(record: Any, path: Path) -> None:
    ok = isinstance(record, dict) and isinstance(record.get("file_name"), str)
    ok = ok and all(
        isinstance(record.get(key), int) and record[key] > 0 for key in ("height", "width")
    )
    if not ok or not isinstance(record.get("id"), int):
        raise BenchmarkReadError(f"{path}: bad image record {str(record)[:200]}")

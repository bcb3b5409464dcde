"""One sampled item (+ its raw labels) -> its training examples, one per applicable task."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dicepipe.imageio import ImageDecodeError, encode_png, rle_mask, rle_runs_from_strings
from dicepipe.params.encode import EncodeParams
from dicepipe.records import ItemError
from dicepipe.sampling import item_rng, point_count, prompt_points
from dicepipe.shards.writer import image_cell
from dicepipe.targets.depth import encode_depth
from dicepipe.targets.normals import encode_normals
from dicepipe.targets.pose import encode_pose
from dicepipe.targets.segmentation import encode_instances, point_mask_target
from dicepipe.tasks import SHARD_TASKS, TASK_PROMPTS

ANNOTATION_TEACHER = "annotations"
COCO_KEYPOINTS = 17  # len(targets.pose.COCO_KEYPOINT_NAMES): the skeleton the pose target draws


Built = tuple[np.ndarray, list, dict, str]  # target, points, meta, teacher


@dataclass(frozen=True)
class ItemLabels:
    """Everything an example builder may read about one item."""

    item: dict[str, Any]
    depth: np.ndarray | None
    normals: np.ndarray | None
    label_meta: dict[str, Any]
    annotations: list[dict[str, Any]]
    masks: list[tuple[int, np.ndarray]]  # (annotation id, mask), non-empty, in id order
    params: EncodeParams

    @property
    def categorised(self) -> bool:
        """Whether every mask carries a category (COCO-format instances; SA-1B has none)."""
        return bool(self.annotations) and all("category_id" in a for a in self.annotations)

    def feeds(self, task: str) -> bool:
        """Whether the item's source role (the sample row's `tasks`) includes `task`."""
        return task in (self.item.get("tasks") or ())


def examples_for_item(
    item: dict[str, Any],
    depth: np.ndarray | None,
    normals: np.ndarray | None,
    label_meta: dict[str, Any],
    params: EncodeParams,
) -> list[dict[str, Any]]:
    """Training rows of one item for every task in `params.tasks` that its labels support.

    Each task's builder (`BUILDERS`, keyed by the registry's task names) says whether the item
    feeds it: depth and normals come from the teacher's labels; the annotation tasks are those
    of the item's source role (`item["tasks"]`, set by the sample params): masks give point,
    entity (categories ignored) or semantic segmentation (categories kept), keypoints give
    pose. Raises ItemError("no_target") when no requested task applies, so the item is still
    accounted for.
    """
    annotations = json.loads(item["annotations"])
    mask_tasks = set(MASK_TASKS) & set(item.get("tasks") or ()) & set(params.tasks)
    masks = _decode_masks(annotations, item["height"], item["width"]) if mask_tasks else []
    labels = ItemLabels(item, depth, normals, label_meta, annotations, masks, params)
    rows = []
    for task in SHARD_TASKS:
        built = BUILDERS[task](labels) if task in params.tasks else None
        if built is not None:
            target, points, meta, teacher = built
            rows.append(_row(item, task, encode_png(target), points, meta, teacher))
    if not rows:
        raise ItemError("no_target", f"none of the tasks {list(params.tasks)} applies to this item")
    return rows


def _depth_example(labels: ItemLabels) -> Built | None:
    if labels.depth is None:
        return None
    target, points, meta = _depth_target(labels.depth, labels.params)
    meta = {**meta, "focal_px": labels.label_meta.get("focal_px")}
    return target, points, meta, labels.label_meta.get("teacher", "")


def _normal_example(labels: ItemLabels) -> Built | None:
    if labels.normals is None:
        return None
    return (*_normal_target(labels.normals), labels.label_meta.get("teacher", ""))


MASK_TASKS = ("point_segmentation", "entity_segmentation", "semantic_segmentation")


def _point_example(labels: ItemLabels) -> Built | None:
    if not labels.masks or not labels.feeds("point_segmentation"):
        return None
    stored = {a["id"]: a.get("prompt_points") for a in labels.annotations}
    built = _point_target(labels.item["key"], labels.masks, stored, labels.params)
    return (*built, ANNOTATION_TEACHER)


def _entity_example(labels: ItemLabels) -> Built | None:
    if not labels.masks or not labels.feeds("entity_segmentation"):
        return None
    built = _entity_target(labels.item["key"], labels.masks, labels.params, None)
    return (*built, ANNOTATION_TEACHER)


def _semantic_example(labels: ItemLabels) -> Built | None:
    if not labels.masks or not labels.categorised or not labels.feeds("semantic_segmentation"):
        return None
    categories = {a["id"]: a["category_id"] for a in labels.annotations}
    built = _entity_target(labels.item["key"], labels.masks, labels.params, categories)
    return (*built, ANNOTATION_TEACHER)


def _pose_example(labels: ItemLabels) -> Built | None:
    if not labels.feeds("pose"):
        return None
    keypoints = _keypoints(labels.annotations, labels.item["height"], labels.item["width"])
    if keypoints is None:
        return None
    return (*_pose_target(keypoints, labels.item, labels.params), ANNOTATION_TEACHER)


# One builder per task of the registry that the encode stage makes (`TaskSpec.in_shards`).
BUILDERS: dict[str, Callable[[ItemLabels], Built | None]] = {
    "depth": _depth_example,
    "normal": _normal_example,
    "point_segmentation": _point_example,
    "entity_segmentation": _entity_example,
    "semantic_segmentation": _semantic_example,
    "pose": _pose_example,
}


COMPOSITE_TEACHER = "composite"


def composite_example(composite: dict[str, Any]) -> dict[str, Any]:
    """The point-segmentation training row of a hair-matting composite (target made upstream)."""
    meta = json.loads(composite["meta"])
    task = "point_segmentation"
    return _row(composite, task, composite["target"], composite["points"], meta, COMPOSITE_TEACHER)


def _row(item: dict, task: str, target_png: bytes, points: list, meta: dict, teacher: str) -> dict:
    return {
        "key": item["key"],
        "task": task,
        "prompt": TASK_PROMPTS[task],
        "image": image_cell(item["image"]),
        "target": image_cell(target_png),
        "points": points,
        "source": item["source"],
        "source_id": item["source_id"],
        "width": item["width"],
        "height": item["height"],
        "teacher": teacher,
        "meta": json.dumps(meta, sort_keys=True, separators=(",", ":")),
    }


def _depth_target(depth: np.ndarray, params: EncodeParams) -> tuple[np.ndarray, list, dict]:
    try:
        target, meta = encode_depth(
            depth, space=params.depth.space, quantiles=params.depth.quantiles
        )
    except ValueError as error:
        raise ItemError("bad_depth", str(error)) from None
    return target, [], meta


def _normal_target(normals: np.ndarray) -> tuple[np.ndarray, list, dict]:
    return encode_normals(normals), [], {"convention": "camera: X right, Y up, Z toward viewer"}


def _decode_masks(
    annotations: list[dict[str, Any]], height: int, width: int
) -> list[tuple[int, np.ndarray]]:
    """(annotation id, boolean mask) for every non-empty annotation mask, in id order.

    The sample stage stores every mask as a compressed RLE string of the image's size; one
    that is not (an older or hand-edited file) is an ItemError, never a native decoder crash.
    """
    masks = []
    for annotation in sorted(annotations, key=lambda a: a["id"]):
        rle = annotation["segmentation"]
        if rle["size"] != [height, width]:
            message = f"annotation {annotation['id']} has RLE size {rle['size']}"
            raise ItemError("rle_size_mismatch", f"{message}, image is {height}x{width}")
        counts = rle["counts"]
        if not isinstance(counts, str):
            message = f"annotation {annotation['id']}: RLE counts are {type(counts).__name__}"
            raise ItemError("invalid_rle", f"{message}, not a compressed string")
        try:
            runs, _ = rle_runs_from_strings([counts.encode()], height * width)
        except ImageDecodeError as error:
            raise ItemError("invalid_rle", f"annotation {annotation['id']}: {error}") from None
        mask = rle_mask(runs, height, width)
        if mask.any():
            masks.append((int(annotation["id"]), mask))
    return masks


def _point_target(
    key: str,
    masks: list[tuple[int, np.ndarray]],
    stored_points: dict[int, list | None],
    params: EncodeParams,
) -> tuple[np.ndarray, list, dict]:
    """One seeded mask of the item, with k in [points.min, points.max] prompt points: a prefix
    of the points the sample stage stored for it (seeded per annotation) when it stored at
    least k, else k drawn here from the mask by the same rule."""

    rng = item_rng(params.seed, key, "point_segmentation")
    annotation_id, mask = masks[int(rng.integers(len(masks)))]
    stored = stored_points.get(annotation_id) or []
    k = point_count(rng, params.points.min, params.points.max)
    if len(stored) >= k:
        points = [[float(x), float(y)] for x, y in stored[:k]]
    else:
        points = prompt_points(mask, k, rng).tolist()
    return point_mask_target(mask), points, {"annotation_id": annotation_id}


def _entity_target(
    key: str,
    masks: list[tuple[int, np.ndarray]],
    params: EncodeParams,
    categories: dict[int, int] | None,
) -> tuple[np.ndarray, list, dict]:
    """Entity (categories None) or semantic target: a colour per instance (encode.colors)."""

    task = "entity_segmentation" if categories is None else "semantic_segmentation"
    ids = [annotation_id for annotation_id, _ in masks]
    target, table = encode_instances(
        [mask for _, mask in masks],
        item_rng(params.seed, key, task),
        categories=None if categories is None else [categories[i] for i in ids],
        scheme=params.colors.scheme,
        min_black_distance=params.colors.min_black_distance,
        min_distance=params.colors.min_distance,
    )
    for entry in table:
        entry["annotation_id"] = ids[entry["instance"]]
    return target, [], {"instances": table}


def _keypoints(annotations: list[dict[str, Any]], height: int, width: int) -> np.ndarray | None:
    """(P, 17, 3) COCO keypoints of the annotated people, or None when nobody has any or the
    skeleton is not COCO's 17 keypoints (the only one the pose target draws).

    The sample stage checked them; what does not fit here is an ItemError, never a crash:
    people with different counts (`keypoint_count_mismatch`), values that are not finite
    triples (`bad_keypoints`), labelled points far outside the image (`keypoints_out_of_bounds`).
    """
    people = [a.get("keypoints") or [] for a in annotations if a.get("num_keypoints", 0) > 0]
    if not people:
        return None
    lengths = sorted({len(p) for p in people})
    if len(lengths) > 1:
        raise ItemError("keypoint_count_mismatch", f"people with {lengths} keypoint values")
    try:
        array = np.asarray(people, np.float64)
    except (TypeError, ValueError):
        raise ItemError("bad_keypoints", "keypoints are not numbers") from None
    if lengths[0] % 3 or not np.isfinite(array).all():
        raise ItemError("bad_keypoints", f"{lengths[0]} keypoint values, not finite x, y, v")
    array = array.reshape(len(people), -1, 3)
    if array.shape[1] != COCO_KEYPOINTS:
        return None
    labelled = array[..., 2] > 0
    xs, ys, margin = array[..., 0][labelled], array[..., 1][labelled], max(height, width)
    if labelled.any() and (
        xs.min() < -margin or xs.max() > width + margin
        or ys.min() < -margin or ys.max() > height + margin
    ):  # fmt: skip
        raise ItemError("keypoints_out_of_bounds", f"keypoints far outside {width}x{height}")
    return array.astype(np.float32)


def _pose_target(
    keypoints: np.ndarray, item: dict[str, Any], params: EncodeParams
) -> tuple[np.ndarray, list, dict]:
    radius, thickness = params.pose.sizes(item["height"], item["width"])
    target = encode_pose(
        keypoints, item["height"], item["width"], radius=radius, thickness=thickness
    )
    return target, [], {"keypoints": keypoints.round(2).tolist()}

"""Shared plumbing for COCO-style scores: input checks, in-memory COCO indexes, COCOeval.

Source protocol: pycocotools `COCOeval` (Lin et al. 2014, cocodataset.org/#detection-eval),
run on COCO objects built in memory; everything handed to pycocotools' native code (mask
encoding, IoU, OKS) is validated here first, so bad input is a ValueError naming the image
and object, never a crash or a silent mis-score.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from contextlib import redirect_stdout
from typing import Any

import numpy as np

CATEGORY_ID = 1  # class-agnostic: every object is one category


def check_image_sizes(image_sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """(height, width) pairs of positive ints, one per image."""
    sizes = []
    for index, size in enumerate(image_sizes):
        if len(size) != 2 or any(int(v) != v or v < 1 for v in size):
            raise ValueError(f"image {index}: size must be (height, width) positive ints: {size}")
        sizes.append((int(size[0]), int(size[1])))
    return sizes


def check_lengths(n_images: int, **per_image: Sequence[Any] | None) -> None:
    """Every per-image argument given has one entry per image."""
    for name, values in per_image.items():
        if values is not None and len(values) != n_images:
            raise ValueError(f"{name}: got {len(values)} entries for {n_images} images")


def check_binary_mask(mask: np.ndarray, size: tuple[int, int], where: str) -> np.ndarray:
    """A binary (H, W) mask of the image's size as a Fortran-ordered uint8 array, as
    `pycocotools.mask.encode` needs; bool, integer or float masks of 0s and 1s are accepted."""
    mask = np.asarray(mask)
    if mask.shape != size:
        raise ValueError(f"{where}: mask shape {mask.shape} does not match the image {size}")
    binary = mask.dtype == bool or (
        np.issubdtype(mask.dtype, np.number) and bool(np.isin(mask, (0, 1)).all())
    )
    if not binary:
        raise ValueError(f"{where}: mask must be binary (bool or 0/1), got {mask.dtype}")
    return np.asfortranarray(mask.astype(np.uint8))


def check_scores(scores: Sequence[float], n: int, where: str) -> list[float]:
    """`n` finite float scores."""
    values = np.asarray(scores, np.float64).ravel()
    if values.size != n:
        raise ValueError(f"{where}: got {values.size} scores for {n} predictions")
    if not np.isfinite(values).all():
        raise ValueError(f"{where}: scores must be finite")
    return values.tolist()


def check_flags(flags: Sequence[bool] | None, n: int, where: str) -> list[int]:
    """`n` iscrowd flags as 0/1 ints (all 0 when not given)."""
    if flags is None:
        return [0] * n
    values = [int(bool(v)) for v in flags]
    if len(values) != n:
        raise ValueError(f"{where}: got {len(values)} iscrowd flags for {n} objects")
    return values


def coco_index(
    sizes: Sequence[tuple[int, int]] | int, annotations: list[dict[str, Any]]
) -> Any:  # pycocotools.coco.COCO
    """A pycocotools COCO index of images 1..N with the given (height, width) sizes (or just
    N images when only their number matters), one category and `annotations` (given ids
    1..M here: COCOeval treats id 0 as 'unmatched')."""
    from pycocotools.coco import COCO

    for number, annotation in enumerate(annotations, start=1):
        annotation["id"] = number
    if isinstance(sizes, int):
        images = [{"id": i} for i in range(1, sizes + 1)]
    else:
        images = [{"id": i, "height": h, "width": w} for i, (h, w) in enumerate(sizes, 1)]
    coco = COCO()
    coco.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": CATEGORY_ID, "name": "object"}],
    }
    with redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
        coco.createIndex()
    return coco


def run_cocoeval(
    gt: Any, dt: Any, iou_type: str, names: Sequence[str], **params: Any
) -> dict[str, float]:
    """COCOeval evaluate, accumulate and summarize (quietly), with `params` set on
    `COCOeval.params`; the summary stats under `names` (-1 where COCO leaves one undefined,
    e.g. no ground truth in an area range)."""
    from pycocotools.cocoeval import COCOeval

    evaluator = COCOeval(gt, dt, iou_type)
    for key, value in params.items():
        setattr(evaluator.params, key, value)
    with redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(names, evaluator.stats, strict=True)}

"""The exact-label teacher: depth and normals that synthetic sources ship beside their images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dicepipe.records import ItemError
from dicepipe.teachers.base import Label, TeacherInput

RENDERED_SOURCE = "synthetic"  # scenes whose id names their render: labels are re-rendered


class GroundTruthTeacher:
    """Reads `<root>/<source>/<source_id>.npz` (depth, normals, focal_px) for each item, and
    re-renders the exact labels of rendered scenes (`sources.synthetic.scenes`) from their id."""

    identity = "ground_truth:v1"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def label(self, batch: Sequence[TeacherInput]) -> list[Label]:
        """Exact labels for every item; an item without a label file raises ItemError."""
        return [self._label_one(item) for item in batch]

    def label_path(self, item: TeacherInput) -> Path:
        """Where the exact label of an item lives."""
        return self.root / item.source / f"{item.source_id}.npz"

    def has_label(self, item: TeacherInput) -> bool:
        """True when the source ships an exact label for this item."""
        if item.source == RENDERED_SOURCE:
            return True
        return _plain_name(item.source, item.source_id) and self.label_path(item).exists()

    def _label_one(self, item: TeacherInput) -> Label:
        if item.source == RENDERED_SOURCE:
            return self._rendered(item)
        if not _plain_name(item.source, item.source_id):
            raise ItemError("bad_id", f"{item.key!r} cannot name a label file")
        path = self.label_path(item)
        if not path.exists():
            raise ItemError("missing_label", f"no exact label at {path}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                depth = npz["depth"].astype(np.float32)
                normals = npz["normals"].astype(np.float32)
                focal_px = float(npz["focal_px"])
        except Exception as error:  # noqa: BLE001 - zip, npy, key and type faults alike
            message = f"{path}: {type(error).__name__}: {error}"
            raise ItemError("bad_label_file", message) from None
        if not (np.isfinite(focal_px) and focal_px > 0):
            raise ItemError("bad_label_file", f"{path}: focal_px {focal_px} is not > 0")
        if depth.shape != item.image.shape[:2] or normals.shape != item.image.shape:
            raise ItemError(
                "label_size_mismatch",
                f"label {depth.shape} does not match image {item.image.shape[:2]} at {path}",
            )
        return Label(item.key, depth, focal_px, normals, self.identity)

    def _rendered(self, item: TeacherInput) -> Label:
        from dicepipe.sources.synthetic.scenes import render_from_id

        height, width = item.image.shape[:2]
        scene = render_from_id(item.source_id, width, height)
        if not np.array_equal(scene.rgb, item.image):
            raise ItemError(
                "label_mismatch", f"re-rendering {item.source_id} does not give the sampled image"
            )
        return Label(item.key, scene.depth, scene.focal_px, scene.normals, self.identity)


def _plain_name(*parts: str) -> bool:
    """True when every part is a plain file name: no folder, no `..`, no NUL."""
    return all(
        part
        and "/" not in part
        and "\\" not in part
        and "\0" not in part
        and part not in (".", "..")
        for part in parts
    )

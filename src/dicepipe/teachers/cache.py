"""Per-item label cache: a teacher's labels keyed by (item key, teacher identity)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dicepipe.storage import Location, atomic_write, location
from dicepipe.teachers.base import Label, Teacher, TeacherInput


class CachedTeacher:
    """Wraps a teacher; labels already in `cache_dir` (a folder or an fsspec URL) for its
    identity are read, not computed.

    The identity covers the weights digest, dtype and every parameter that changes the output,
    so a changed teacher never reads another's labels. Counters tell how many items were
    computed and how many came from the cache.
    """

    def __init__(self, teacher: Teacher, cache_dir: str | Path) -> None:
        self.teacher = teacher
        self.identity = teacher.identity
        digest = hashlib.sha256(teacher.identity.encode()).hexdigest()[:16]
        self.folder = location(cache_dir) / digest
        self.hits = 0
        self.computed = 0

    def path(self, key: str, focal_px: float | None = None) -> Location:
        """Where the label of `key` is cached; a known focal length given to the teacher is
        part of the name (the same image with another focal has another label)."""
        text = key if focal_px is None else f"{key}\0focal={float(focal_px)!r}"
        name = hashlib.sha256(text.encode()).hexdigest()
        return self.folder / name[:2] / f"{name}.npz"

    def label(self, batch: Sequence[TeacherInput]) -> list[Label]:
        """Labels of the batch in order: cached ones read, the rest computed and stored."""
        cached = {item.key: self._read(item) for item in batch}
        missing = [item for item in batch if cached[item.key] is None]
        if missing:
            for item, label in zip(missing, self.teacher.label(missing), strict=True):
                self._write(label, item.focal_px)
                cached[label.key] = label
            self.computed += len(missing)
        self.hits += len(batch) - len(missing)
        return [cached[item.key] for item in batch]

    def _read(self, item: TeacherInput) -> Label | None:
        path = self.path(item.key, item.focal_px)
        if not path.exists():
            return None
        with (
            path.open("rb") as handle,
            np.load(io.BytesIO(handle.read()), allow_pickle=False) as data,
        ):
            depth = data["depth"].astype(np.float32)
            normals = data["normals"].astype(np.float32) if "normals" in data else None
            focal = float(data["focal_px"])
        if depth.shape != item.image.shape[:2]:
            return None  # same key, other image: recompute
        return Label(item.key, depth, focal, normals, self.identity)

    def _write(self, label: Label, focal_px: float | None) -> None:
        arrays = {"depth": label.depth.astype(np.float16), "focal_px": np.float32(label.focal_px)}
        if label.normals is not None:
            arrays["normals"] = label.normals.astype(np.float16)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write(self.path(label.key, focal_px), lambda handle: handle.write(buffer.getvalue()))

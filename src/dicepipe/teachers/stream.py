"""Feed a teacher from encoded images: decode in DataLoader workers, pin, label in batches.

The items iterable is consumed lazily in the main process and handed to the workers through
the DataLoader's sampler, so it is read once however many workers decode; results come back
in input order. A bad image or a failing item becomes a result with an ItemError, never an
exception that ends the stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dicepipe.imageio import exif_focal_px
from dicepipe.records import ItemError
from dicepipe.teachers.base import Label, Teacher, TeacherBuildError, TeacherInput
from dicepipe.weights import MissingWeightsError

__all__ = ["StreamItem", "StreamResult", "exif_focal_px", "label_isolated", "label_stream"]


@dataclass(frozen=True)
class StreamItem:
    """One encoded image to label; focal_px (the sample row's, read from the original file's
    EXIF) overrides the EXIF 35 mm-equivalent focal of `data`."""

    key: str
    data: bytes
    source: str = ""
    source_id: str = ""
    focal_px: float | None = None


@dataclass(frozen=True)
class StreamResult:
    """The outcome for one item: a label, or the error that quarantines it."""

    key: str
    label: Label | None
    error: ItemError | None


def decode_item(item: StreamItem) -> dict[str, Any]:
    """Decode one item (runs in a worker): upright RGB uint8 tensor plus its metadata."""
    import torch

    from dicepipe.imageio import ImageDecodeError, decode_image

    out: dict[str, Any] = {"key": item.key, "source": item.source, "source_id": item.source_id}
    try:
        rgb = decode_image(item.data).rgb
    except ImageDecodeError as error:
        return {**out, "error": (error.reason, str(error))}
    except Exception as error:  # any decoder crash quarantines only this item
        return {**out, "error": ("decode_error", f"{type(error).__name__}: {error}")}
    rgb = rgb if rgb.flags.writeable else rgb.copy()  # torch refuses read-only buffers
    height, width = rgb.shape[:2]
    focal = item.focal_px or exif_focal_px(item.data, width, height)
    return {**out, "image": torch.from_numpy(rgb), "focal_px": focal, "error": None}


class _DecodeDataset:
    """Map-style dataset whose "indices" are the StreamItems themselves (sent by the sampler)."""

    def __getitem__(self, item: StreamItem) -> dict[str, Any]:
        return decode_item(item)


def _as_item(item: StreamItem | tuple[str, bytes]) -> StreamItem:
    if isinstance(item, StreamItem):
        return item
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes | bytearray):
        return StreamItem(str(item[0]), bytes(item[1]))
    raise TypeError(f"items must be StreamItem or (key, bytes), got {type(item).__name__}")


def _keep_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def label_stream(
    teacher: Teacher,
    items: Iterable[StreamItem | tuple[str, bytes]],
    batch_size: int = 8,
    num_workers: int = 2,
    pin_memory: bool | None = None,
    prefetch_factor: int = 2,
) -> Iterator[StreamResult]:
    """Label `items` with `teacher`, decoding in `num_workers` DataLoader workers.

    pin_memory: None -> pin when CUDA is available (so host->device copies are non-blocking).
    """
    import torch
    from torch.utils.data import DataLoader

    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"need batch_size >= 1, num_workers >= 0; got {batch_size}, {num_workers}")
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    num_workers = usable_workers(num_workers)
    loader = DataLoader(
        _DecodeDataset(),  # type: ignore[arg-type]
        sampler=(_as_item(item) for item in items),  # type: ignore[arg-type]
        batch_size=batch_size,
        collate_fn=_keep_list,
        num_workers=num_workers,
        pin_memory=pin,
        prefetch_factor=prefetch_factor if num_workers else None,
    )
    for batch in loader:
        yield from _label_batch(teacher, batch)


def _label_batch(teacher: Teacher, batch: Sequence[dict[str, Any]]) -> list[StreamResult]:
    ready = [record for record in batch if record["error"] is None]
    inputs = [
        TeacherInput(r["key"], r["source"], r["source_id"], r["image"].numpy(), r["focal_px"])
        for r in ready
    ]
    outcomes = iter(label_isolated(teacher, inputs))
    results = []
    for record in batch:
        if record["error"] is not None:
            results.append(StreamResult(record["key"], None, ItemError(*record["error"])))
            continue
        outcome = next(outcomes)
        if isinstance(outcome, ItemError):
            results.append(StreamResult(record["key"], None, outcome))
        else:
            results.append(StreamResult(record["key"], outcome, None))
    return results


def label_isolated(teacher: Teacher, inputs: Sequence[TeacherInput]) -> list[Label | ItemError]:
    """teacher.label on the whole batch; if it fails, item by item, so a bad item costs itself."""
    if not inputs:
        return []
    try:
        labels = list(teacher.label(inputs))
    except (MissingWeightsError, TeacherBuildError):
        raise  # a configuration problem: stop the stage, it is no item's fault
    except Exception as error:
        if len(inputs) == 1:
            return [_item_error(error)]
        return [_label_one(teacher, item) for item in inputs]
    if len(labels) != len(inputs):
        raise RuntimeError(f"teacher returned {len(labels)} labels for {len(inputs)} inputs")
    return labels


def _label_one(teacher: Teacher, item: TeacherInput) -> Label | ItemError:
    try:
        return teacher.label([item])[0]
    except (MissingWeightsError, TeacherBuildError):
        raise
    except Exception as error:
        return _item_error(error)


def _item_error(error: Exception) -> ItemError:
    if isinstance(error, ItemError):
        return error
    return ItemError("teacher_error", f"{type(error).__name__}: {error}")


def usable_workers(requested: int) -> int:
    """DataLoader workers this process may start: none inside a daemonic process (a Dask or
    multiprocessing worker may not have children), where decoding happens in-thread."""
    import multiprocessing

    return 0 if multiprocessing.current_process().daemon else requested

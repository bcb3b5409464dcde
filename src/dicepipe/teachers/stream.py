"""Feed a teacher from encoded images: decode in a thread pool, label in batches.

Decoding runs in threads, not DataLoader worker processes: the image decoders release the
GIL, so threads decode in parallel (and beside the teacher's forward pass, which releases it
too), and no process is forked. Forking is what a stage must not do: its Prefect task runner
has other threads, one of which may hold an import or library lock at the moment of the
fork; the child then waits on that lock forever (seen: a label stage hung on an import hook's
lock inside a DataLoader worker). Threads also work inside daemonic Dask workers, which may
not have children. The items iterable is consumed lazily, at most `prefetch_factor + 1`
batches ahead; results come back in input order. A bad image or a failing item becomes a
result with an ItemError, never an exception that ends the stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from dicepipe.imageio import exif_focal_px
from dicepipe.records import ItemError
from dicepipe.teachers.base import Label, Teacher, TeacherBuildError, TeacherInput
from dicepipe.weights import MissingWeightsError

__all__ = [
    "StreamItem",
    "StreamResult",
    "decoded_batches",
    "exif_focal_px",
    "label_isolated",
    "label_stream",
]


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
    """Decode one item: upright RGB uint8 array plus its metadata, or the decode error."""
    from dicepipe.imageio import ImageDecodeError, decode_image

    out: dict[str, Any] = {"key": item.key, "source": item.source, "source_id": item.source_id}
    try:
        rgb = decode_image(item.data).rgb
    except ImageDecodeError as error:
        return {**out, "error": (error.reason, str(error))}
    except Exception as error:  # any decoder crash quarantines only this item
        return {**out, "error": ("decode_error", f"{type(error).__name__}: {error}")}
    height, width = rgb.shape[:2]
    focal = item.focal_px or exif_focal_px(item.data, width, height)
    return {**out, "image": rgb, "focal_px": focal, "error": None}


def pin_decoded(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its image in page-locked memory (a numpy view of a pinned tensor), so
    the teacher's host-to-device copy can run asynchronously. CUDA only."""
    if record.get("image") is None:
        return record
    import torch

    pinned = torch.from_numpy(record["image"]).pin_memory()
    return {**record, "image": pinned.numpy()}


def _as_item(item: StreamItem | tuple[str, bytes]) -> StreamItem:
    if isinstance(item, StreamItem):
        return item
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes | bytearray):
        return StreamItem(str(item[0]), bytes(item[1]))
    raise TypeError(f"items must be StreamItem or (key, bytes), got {type(item).__name__}")


def decoded_batches(
    items: Iterable[StreamItem],
    batch_size: int,
    num_workers: int,
    prefetch_factor: int = 2,
    pin_memory: bool = False,
) -> Iterator[list[dict[str, Any]]]:
    """`decode_item` of every item, in batches and in input order, decoded by `num_workers`
    threads (0: in this thread) while up to `prefetch_factor` further batches are decoded;
    with `pin_memory` (CUDA only) the images land in page-locked memory (`pin_decoded`)."""
    chunks = iter(lambda: list(islice(items, batch_size)), [])
    decode = (lambda item: pin_decoded(decode_item(item))) if pin_memory else decode_item
    if num_workers == 0:
        yield from ([decode(item) for item in chunk] for chunk in chunks)
        return
    pending: deque[list[Future[dict[str, Any]]]] = deque()
    with ThreadPoolExecutor(num_workers, thread_name_prefix="decode") as pool:
        for chunk in chunks:
            pending.append([pool.submit(decode, item) for item in chunk])
            if len(pending) > prefetch_factor:
                yield [future.result() for future in pending.popleft()]
        while pending:
            yield [future.result() for future in pending.popleft()]


def label_stream(
    teacher: Teacher,
    items: Iterable[StreamItem | tuple[str, bytes]],
    batch_size: int = 8,
    num_workers: int = 2,
    prefetch_factor: int = 2,
    pin_memory: bool = False,
) -> Iterator[StreamResult]:
    """Label `items` with `teacher` in batches of `batch_size`, decoding in `num_workers`
    threads ahead of the teacher (into pinned memory with `pin_memory`: CUDA teachers)."""
    if batch_size < 1 or num_workers < 0 or prefetch_factor < 0:
        message = f"{batch_size}, {num_workers}, {prefetch_factor}"
        raise ValueError(f"need batch_size >= 1, num_workers, prefetch_factor >= 0; got {message}")
    stream = (_as_item(item) for item in items)
    for batch in decoded_batches(stream, batch_size, num_workers, prefetch_factor, pin_memory):
        yield from _label_batch(teacher, batch)


def _label_batch(teacher: Teacher, batch: Sequence[dict[str, Any]]) -> list[StreamResult]:
    ready = [record for record in batch if record["error"] is None]
    inputs = [
        TeacherInput(r["key"], r["source"], r["source_id"], r["image"], r["focal_px"])
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

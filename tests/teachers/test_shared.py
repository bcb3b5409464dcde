"""One teacher per process however many task threads ask at once; decoding forks nothing, so
it runs in daemonic (Dask) workers and beside other threads that hold locks."""

from __future__ import annotations

import multiprocessing
import threading
import time

from dicepipe.imageio import encode_png
from dicepipe.params.label import LabelParams
from dicepipe.teachers import factory as teachers
from dicepipe.teachers.stream import StreamItem, decoded_batches


def test_concurrent_tasks_build_the_teacher_once(monkeypatch):
    built = []

    def slow_build(params):
        built.append(threading.get_ident())
        time.sleep(0.2)  # a model load: long enough for every thread to arrive meanwhile
        return object()

    monkeypatch.setattr(teachers, "make_teacher", slow_build)
    teachers._TEACHERS.clear()
    params = LabelParams(batch_size=3)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(teachers.shared_teacher(params)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert teachers.built_teacher(params) is results[0]
    teachers._TEACHERS.clear()
    assert teachers.built_teacher(params) is None
    assert len(built) == 1 and len({id(r) for r in results}) == 1


def _items(count: int) -> list[StreamItem]:
    import numpy as np

    return [StreamItem(f"k{i}", encode_png(np.full((8, 6, 3), i, np.uint8))) for i in range(count)]


def _decode_in_child(queue) -> None:
    batches = list(decoded_batches(iter(_items(5)), batch_size=2, num_workers=2))
    queue.put([[int(record["image"][0, 0, 0]) for record in batch] for batch in batches])


def test_a_daemonic_worker_decodes_with_threads():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_decode_in_child, args=(queue,), daemon=True)
    child.start()
    child.join(60)
    assert queue.get(timeout=5) == [[0, 1], [2, 3], [4]]


def test_decoding_forks_nothing_while_another_thread_holds_a_lock():
    """A forked child would inherit `held` locked; threads wait for nothing."""
    held = threading.Lock()
    held.acquire()
    try:
        batches = list(decoded_batches(iter(_items(7)), batch_size=3, num_workers=2))
    finally:
        held.release()
    assert [[r["key"] for r in batch] for batch in batches] == [
        ["k0", "k1", "k2"],
        ["k3", "k4", "k5"],
        ["k6"],
    ]
    assert multiprocessing.active_children() == []


def test_decoding_reads_the_items_lazily():
    consumed = []

    def items():
        for item in _items(20):
            consumed.append(item.key)
            yield item

    batches = decoded_batches(items(), batch_size=2, num_workers=2, prefetch_factor=1)
    next(batches)
    assert len(consumed) <= 2 * 3  # the batch handed out, one prefetched, one being read

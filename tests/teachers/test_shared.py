"""One teacher per process however many task threads ask at once; no DataLoader children in
daemonic (Dask) workers."""

from __future__ import annotations

import multiprocessing
import threading
import time

from dicepipe import teachers
from dicepipe.params import LabelParams
from dicepipe.teachers.stream import usable_workers


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


def _report(queue) -> None:
    queue.put(usable_workers(2))


def test_a_daemonic_worker_decodes_in_thread():
    assert usable_workers(2) == 2
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_report, args=(queue,), daemon=True)
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == 0

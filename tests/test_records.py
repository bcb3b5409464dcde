"""The per-item guard: one place where a failing item becomes a quarantine reason."""

from __future__ import annotations

import pickle

import pytest

from dicepipe.records import ItemError, guard, unexpected_error
from dicepipe.sources.matting import BadForeground


def test_guard_returns_the_result_or_the_item_error():
    assert guard(lambda a, b=0: a + b, 2, b=3) == 5
    error = ItemError("bad_id", "no such scene")

    def fail():
        raise error

    assert guard(fail) is error


def test_any_other_exception_becomes_unexpected_error_naming_it():
    result = guard(int, "x")
    assert (result.reason, result.message) == (
        "unexpected_error",
        "ValueError: invalid literal for int() with base 10: 'x'",
    )
    assert len(unexpected_error(RuntimeError("m" * 5000)).message) == 2000


def test_interrupts_are_not_items_faults():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        guard(interrupted)


def test_a_bad_foreground_is_an_item_error_with_its_kind_as_reason():
    error = guard(_raise, BadForeground("empty_alpha: max alpha 0 < 0.001"))
    assert (error.reason, error.kind, error.message) == (
        "empty_alpha",
        "empty_alpha",
        "empty_alpha: max alpha 0 < 0.001",
    )
    copy = pickle.loads(pickle.dumps(error))  # crosses Dask worker boundaries
    assert type(copy) is BadForeground and copy.message == error.message


def _raise(error: Exception) -> None:
    raise error

"""kit.heap.settle: what lives at startup leaves the collector's sight; later garbage still goes."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from channelhub.kit.heap import settle


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def settled() -> Iterator[int]:
    try:
        yield settle()
    finally:
        gc.unfreeze()  # the rest of the test run collects as usual


def _cycle() -> weakref.ref[_Node]:
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_objects_alive_at_settling_are_frozen(settled: int) -> None:
    # Frozen objects still go when nothing refers to them any more: the count only falls.
    assert 1000 < gc.get_freeze_count() <= settled  # this process's modules, at least
    assert sum(gc.get_count()) < 100  # it collected first: young generations nearly empty


def test_a_cycle_made_before_settling_is_collected_by_settling() -> None:
    ref = _cycle()
    try:
        settle()
        assert ref() is None
    finally:
        gc.unfreeze()


def test_garbage_made_after_settling_is_still_collected(settled: int) -> None:
    ref = _cycle()
    assert ref() is not None  # a cycle: reference counting alone never frees it
    gc.collect()
    assert ref() is None
    assert 1000 < gc.get_freeze_count() <= settled

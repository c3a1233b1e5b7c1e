"""The GC pacer: a service's surviving state leaves the full collections; cycles never leak past a sweep."""

from __future__ import annotations

import gc
import weakref

import pytest

from services.runtime.gc_pacing import Pacer


class Node:
    """An object that can sit in a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def unfrozen():
    """Each test starts and ends with nothing frozen, so no other test's objects stay out of the collector."""
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.collect()


def _cycle() -> weakref.ref:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_settling_freezes_what_survived_the_batch():
    state = [Node() for _ in range(1000)]
    pacer = Pacer()
    pacer.settle()
    assert gc.get_freeze_count() >= len(state)
    collected = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
    assert not any(id(n) in collected for n in state)  # no generation holds them: no collection walks them


def test_settling_collects_the_batchs_cyclic_garbage_instead_of_freezing_it():
    gc.disable()  # no automatic collection may collect the cycle first
    try:
        dead = _cycle()
        assert dead() is not None
        Pacer().settle()
        assert dead() is None
    finally:
        gc.enable()


def test_a_frozen_cycle_that_becomes_garbage_is_collected_by_the_sweep_once_due():
    a, b = Node(), Node()
    a.other, b.other = b, a
    watch = weakref.ref(a)
    pacer = Pacer(sweep_s=0.0)
    pacer.settle()  # the cycle is alive, and frozen
    del a, b
    gc.collect()
    assert watch() is not None  # a full collection does not look at the frozen state
    assert pacer.idle() >= 2
    assert watch() is None
    assert gc.get_freeze_count() > 0  # what is still alive is frozen again


def test_the_sweep_waits_for_its_interval():
    a, b = Node(), Node()
    a.other, b.other = b, a
    watch = weakref.ref(a)
    pacer = Pacer(sweep_s=3600.0)
    pacer.settle()
    del a, b
    assert pacer.idle() == 0
    assert watch() is not None


def test_frozen_objects_are_still_freed_by_reference_counting():
    node = Node()
    watch = weakref.ref(node)
    Pacer().settle()
    del node
    assert watch() is None


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_under_load_that_never_idles_a_frozen_cycle_is_collected_by_a_forced_sweep_once_overdue():
    clock = Clock()
    a, b = Node(), Node()
    a.other, b.other = b, a
    watch = weakref.ref(a)
    pacer = Pacer(sweep_s=600.0, force_s=1800.0, clock=clock)
    pacer.settle()  # the cycle is alive, and frozen
    del a, b
    for _ in range(100):  # a batch every 17 s for 28 min, never idle: no sweep yet
        clock.now += 17.0
        assert pacer.settle() == 0
    assert watch() is not None
    clock.now = 1800.0
    assert pacer.settle() >= 2  # the batch after the bound sweeps, idle or not
    assert watch() is None
    assert gc.get_freeze_count() > 0  # what is still alive is frozen again
    clock.now += 17.0
    assert pacer.settle() == 0  # the bound starts again from the forced sweep


def test_an_idle_sweep_puts_off_the_forced_one():
    clock = Clock()
    pacer = Pacer(sweep_s=600.0, force_s=1800.0, clock=clock)
    clock.now = 1200.0
    pacer.idle()
    clock.now = 2900.0  # 1,700 s since the idle sweep, 2,900 since the start
    a, b = Node(), Node()
    a.other, b.other = b, a
    watch = weakref.ref(a)
    pacer.settle()
    del a, b
    clock.now = 2999.0
    assert pacer.settle() == 0 and watch() is not None
    clock.now = 3000.0
    assert pacer.settle() >= 2 and watch() is None

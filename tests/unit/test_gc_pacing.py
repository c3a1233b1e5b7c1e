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

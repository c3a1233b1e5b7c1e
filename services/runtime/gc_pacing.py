"""Keeps CPython's full garbage collections off the path of a vote: the state a service keeps is frozen out of them.

The ledger's judge and the projector's fold hold every register position and every voter's instruction:
hundreds of thousands of long-lived objects. CPython's automatic full collection walks all of them, and
in a 15 s run at 2,000/s (load average 11) each service paused 7 times for 0.3-1.5 s, with every
submission in flight waiting behind the pause. After each committed batch the survivors of the young
generations are frozen (gc.freeze moves them out of every generation, O(1)), so automatic full
collections walk only what is new. Frozen objects are still freed by reference counting; only a cycle
that becomes garbage after its freeze waits for the next sweep, which unfreezes and collects everything.
The sweep runs when the caller is idle, at most every SWEEP_S seconds; under load that never lets up it is
forced after a batch once FORCE_S seconds have passed without one. That costs one pause of the size above
(a full collection of the whole state, 0.3-1.5 s under load) every FORCE_S at most, every vote in flight
waiting behind it; it bounds what leaked cycles hold to what FORCE_S of traffic leaves.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("vote_ledger.gc")

SWEEP_S = 600.0  # a full collection of the frozen state at most this often, when idle: bounds leaked cycles
FORCE_S = 1800.0  # under load with no idle moment, a sweep after a batch once this has passed since the last one


class Pacer:
    """Freezes a service's survivors after each batch; sweeps the frozen state when idle, or when overdue."""

    def __init__(self, sweep_s: float = SWEEP_S, force_s: float = FORCE_S, clock: Callable[[], float] = time.monotonic):
        self.sweep_s = sweep_s
        self.force_s = force_s
        self.clock = clock
        self.swept_at = clock()

    def settle(self) -> int:
        """After a committed batch: collect its young cyclic garbage, freeze what survived; sweep if overdue.

        Returns the objects a forced sweep collected (0 without one).
        """
        gc.collect(1)  # the young generations only: what the batch allocated, not the state
        gc.freeze()
        if self.clock() - self.swept_at < self.force_s:
            return 0
        return self._sweep("forced under load", logging.INFO)  # the pause is said: it shows in the latency

    def idle(self) -> int:
        """When nothing waits: sweep the frozen state if SWEEP_S has passed; return the objects collected."""
        if self.clock() - self.swept_at < self.sweep_s:
            return 0
        return self._sweep("idle", logging.DEBUG)

    def _sweep(self, why: str, level: int) -> int:
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        self.swept_at = self.clock()
        log.log(
            level,
            "full collection of the frozen state (%s): %d collected in %.1f ms",
            why,
            collected,
            (time.perf_counter() - started) * 1000,
        )
        return collected

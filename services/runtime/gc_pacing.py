"""Keeps CPython's full garbage collections off the path of a vote: the state a service keeps is frozen out of them.

The ledger's judge and the projector's fold hold every register position and every voter's instruction:
hundreds of thousands of long-lived objects. CPython's automatic full collection walks all of them, and
in a 15 s run at 2,000/s (load average 11) each service paused 7 times for 0.3-1.5 s, with every
submission in flight waiting behind the pause. After each committed batch the survivors of the young
generations are frozen (gc.freeze moves them out of every generation, O(1)), so automatic full
collections walk only what is new. Frozen objects are still freed by reference counting; only a cycle
that becomes garbage after its freeze waits for the next sweep, which unfreezes and collects everything
at most every SWEEP_S seconds, and only when the caller is idle.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("vote_ledger.gc")

SWEEP_S = 600.0  # a full collection of the frozen state at most this often, when idle: bounds leaked cycles


class Pacer:
    """Freezes a service's survivors after each batch and sweeps the frozen state now and then, when idle."""

    def __init__(self, sweep_s: float = SWEEP_S) -> None:
        self.sweep_s = sweep_s
        self.swept_at = time.monotonic()

    def settle(self) -> None:
        """After a committed batch: collect its young cyclic garbage, then freeze what survived."""
        gc.collect(1)  # the young generations only: what the batch allocated, not the state
        gc.freeze()

    def idle(self) -> int:
        """When nothing waits: sweep the frozen state if SWEEP_S has passed; return the objects collected."""
        if time.monotonic() - self.swept_at < self.sweep_s:
            return 0
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        self.swept_at = time.monotonic()
        log.debug(
            "full collection of the frozen state: %d collected in %.1f ms",
            collected,
            (time.perf_counter() - started) * 1000,
        )
        return collected

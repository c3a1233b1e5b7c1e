"""Back-off for the services' retries: doubling delays up to a cap, one helper instead of a loop per caller.

Hand-written rather than tenacity: the callers need three things (doubling delays with a cap, a log
line that names the next delay, and giving up when the service is stopping), which fit in a few
lines that read like the loops they replace, with no dependency to keep up with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Backoff:
    """Delays between attempts: ``first``, then doubled after each failure, never above ``cap``."""

    def __init__(self, first: float = 0.5, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0  # in a row, since the last reset
        self._next = min(first, cap)  # doubled step by step, never as first * 2**n: hours of failures stay finite

    def failed(self) -> float:
        """Count a failure and return how long to wait before the next attempt."""
        delay = self._next
        self._next = min(delay * 2, self.cap)
        self.failures += 1
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits ``first`` again."""
        self.failures = 0
        self._next = min(self.first, self.cap)


async def retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    log: logging.Logger,
    what: str,
    errors: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    backoff: Backoff | None = None,
    stop: asyncio.Event | None = None,
    traceback: bool = True,
    oserror: str | None = None,
) -> T | None:
    """Run ``attempt`` until it succeeds, waiting longer after each failure of type ``errors``.

    A failure that says Kafka or PostgreSQL is unreachable is told to that dependency of the process
    (services/observability/outage: one line when lost, a count a minute, one line when back) and logged
    here at DEBUG only; any other failure is logged as "<what> (<error>); retrying in N s" (with its
    traceback unless told not to). A failure retrying cannot fix (a refused login, no schema) raises
    failures.CannotGoOn with its one line. Returns the attempt's result, or None once ``stop`` is set
    (checked before each attempt). Any other exception, and cancellation, propagate at once. ``oserror``
    names the dependency a bare OSError or timeout is (outage.of): only for an attempt that touches nothing else.
    """
    from services.observability import outage
    from services.runtime.failures import CannotGoOn, cannot_go_on

    backoff = backoff or Backoff()
    lost: outage.Dependency | None = None
    while stop is None or not stop.is_set():
        try:
            result = await attempt()
        except errors as exc:
            if (reason := cannot_go_on(exc)) is not None:
                raise CannotGoOn(reason) from exc
            delay = backoff.failed()
            dependency = outage.of(exc, oserror)
            if dependency is not None:
                lost = dependency
                dependency.failed(exc, what)
                log.debug("%s (%s); retrying in %.1f s", what, exc, delay, exc_info=traceback)
            else:
                log.error("%s (%s); retrying in %.1f s", what, exc, delay, exc_info=traceback)
            await asyncio.sleep(delay)
            continue
        if lost is not None:
            lost.ok()
        return result
    return None

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
) -> T | None:
    """Run ``attempt`` until it succeeds, waiting longer after each failure of type ``errors``.

    Each failure is logged as "<what> (<error>); retrying in N s" (with its traceback unless told
    not to). Returns the attempt's result, or None once ``stop`` is set (checked before each attempt).
    Any other exception, and cancellation, propagate at once.
    """
    backoff = backoff or Backoff()
    while stop is None or not stop.is_set():
        try:
            return await attempt()
        except errors as exc:
            delay = backoff.failed()
            log.error("%s (%s); retrying in %.1f s", what, exc, delay, exc_info=traceback)
            await asyncio.sleep(delay)
    return None

"""One line per kind of library failure: the first record of a kind passes, its repeats become a count.

During a Kafka outage aiokafka logs each failed reconnect and metadata refresh: 17,444 ERROR lines in
~3 minutes in a tester's run (14,160 "Unable connect to node with id 1" / "Unable to update metadata"
from ``aiokafka``, 1,653 from ``aiokafka.consumer.fetcher``, 1,626 from its group coordinator).
The README promises one line per kind of failure; the repeats are told as "N more like this".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
SUMMARY = "%d more like this in the last %g s: %s"
_SUMMARY_MARK = "_vote_ledger_repeats_summary"  # set on our own summary records: never counted themselves


@dataclass
class _Window:
    """The repeats of one kind counted since ``start``; told when ``end`` passes."""

    start: float
    end: float
    level: int
    suppressed: int = 0


class RepeatsSuppressed(logging.Filter):
    """A handler filter: per (logger, message template), the first record passes, repeats for a window do not.

    The kind is record.msg, the template before its arguments, so "node 1" and "node 2" are one kind. When a
    window ends with repeats, one line at the kind's level says how many; the next window starts there, so a
    failure that goes on prints one count a minute. A window without repeats ends the kind's quiet: its next
    record passes again. Only loggers under ``prefixes`` are filtered (a handler filter sees every logger's
    records, as a logger's own filter does not see its children's).
    """

    def __init__(
        self,
        prefixes: tuple[str, ...] = ("aiokafka",),
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        timers: bool = True,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.window = window
        self.clock = clock
        # timers: tell a window's count when it ends even if no record follows (the outage is over);
        # without them (tests with an injected clock) it is told by the next record through this filter.
        self.timers = timers
        self._windows: dict[tuple[str, str], _Window] = {}
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """Pass the first record of its kind in a window; count and drop the repeats."""
        if getattr(record, _SUMMARY_MARK, False):
            return True
        now = self.clock()
        due = self._ended(now)
        passes = True
        if self._watched(record.name):
            key = (record.name, str(record.msg))
            with self._lock:
                window = self._windows.get(key)
                if window is None:
                    self._windows[key] = _Window(now, now + self.window, record.levelno)
                else:
                    window.suppressed += 1
                    window.level = max(window.level, record.levelno)
                    passes = False
                    if window.suppressed == 1 and self.timers:
                        self._tell_at(window.end - now)
        self._tell(due)  # after the lock: telling logs again, through this filter
        return passes

    def flush(self) -> None:
        """Tell the counts of the windows that have ended (a timer calls this at a window's end)."""
        self._tell(self._ended(self.clock()))

    def cancel(self) -> None:
        """Forget every window and cancel the pending timers, their counts untold (a test's cleanup)."""
        with self._lock:
            self._windows.clear()
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    def _watched(self, name: str) -> bool:
        return any(name == prefix or name.startswith(prefix + ".") for prefix in self.prefixes)

    def _ended(self, now: float) -> list[tuple[str, str, int, int]]:
        """Close every window that has ended: (logger, template, level, repeats) for those with repeats."""
        due = []
        with self._lock:
            for key, window in list(self._windows.items()):
                while window.end <= now:
                    if not window.suppressed:
                        del self._windows[key]
                        break
                    due.append((*key, window.level, window.suppressed))
                    window = self._windows[key] = _Window(window.end, window.end + self.window, window.level)
        return due

    def _tell(self, due: list[tuple[str, str, int, int]]) -> None:
        for name, template, level, repeats in due:
            logging.getLogger(name).log(level, SUMMARY, repeats, self.window, template, extra={_SUMMARY_MARK: True})

    def _tell_at(self, delay: float) -> None:
        timer = threading.Timer(max(delay, 0.0) + 0.01, self.flush)
        timer.daemon = True  # a count still pending never holds the process open at exit
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

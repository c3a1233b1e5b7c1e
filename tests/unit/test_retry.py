"""The services' one back-off: doubling delays up to a cap, retried until success, stopped on request."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.runtime.retry import Backoff, retry

log = logging.getLogger("test_retry")


def test_delays_double_from_the_first_up_to_the_cap_and_a_success_starts_over():
    backoff = Backoff(first=0.5, cap=10.0)
    assert [backoff.failed() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert backoff.failures == 8
    backoff.reset()
    assert (backoff.failed(), backoff.failures) == (0.5, 1)


def test_days_of_failures_keep_waiting_the_cap():
    backoff = Backoff(first=0.5, cap=10.0)
    assert [backoff.failed() for _ in range(5000)][-1] == 10.0 and backoff.failures == 5000


def test_the_ledgers_old_pacing_is_kept():
    # ledger.py paced failed batches with min(0.25 * 2 ** min(n, 6), 10) for the n-th failure in a row.
    backoff = Backoff(first=0.5, cap=10.0)
    assert [backoff.failed() for _ in range(9)] == [min(0.25 * 2 ** min(n, 6), 10.0) for n in range(1, 10)]


async def test_an_attempt_is_retried_until_it_succeeds_and_each_failure_is_logged(caplog):
    calls = []

    async def flaky() -> str:
        calls.append(len(calls))
        if len(calls) < 4:
            raise LookupError(f"down {len(calls)}")  # not an outage (test_retry_outage.py: those are said once)
        return "up"

    with caplog.at_level(logging.ERROR, logger="test_retry"):
        result = await retry(flaky, log=log, what="cannot reach it", backoff=Backoff(first=0.001, cap=0.002))
    assert result == "up" and len(calls) == 4
    assert [r.getMessage() for r in caplog.records] == [
        "cannot reach it (down 1); retrying in 0.0 s",
        "cannot reach it (down 2); retrying in 0.0 s",
        "cannot reach it (down 3); retrying in 0.0 s",
    ]
    assert all(r.exc_info for r in caplog.records)


async def test_an_error_not_named_is_raised_at_once():
    calls = []

    async def broken() -> None:
        calls.append(1)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await retry(broken, log=log, what="x", errors=(ConnectionError,), backoff=Backoff(first=0.001))
    assert calls == [1]


async def test_a_stop_ends_the_retries_without_another_attempt():
    stop = asyncio.Event()
    calls = []

    async def never() -> None:
        calls.append(1)
        if len(calls) == 3:
            stop.set()
        raise OSError("still down")

    assert await retry(never, log=log, what="x", stop=stop, backoff=Backoff(first=0.001), traceback=False) is None
    assert len(calls) == 3
    stop_now = asyncio.Event()
    stop_now.set()
    assert await retry(never, log=log, what="x", stop=stop_now) is None and len(calls) == 3

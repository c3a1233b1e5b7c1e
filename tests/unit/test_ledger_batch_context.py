"""A batch's work runs in a context of its own: what outlives it (timers, tasks) cannot hold the batch."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref

from services.runtime.ledger_consumer import in_fresh_context

# Stands for FastStream's context variable that holds the message (and so the whole batch) being handled.
HANDLED: contextvars.ContextVar[object] = contextvars.ContextVar("handled")


class Batch:
    """A stand-in for a batch of records: weakly referenceable, so the test can see whether it is alive."""


async def test_a_timer_set_while_a_batch_is_handled_does_not_keep_the_batch_alive():
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []
    handled: list[weakref.ref[Batch]] = []

    async def work() -> None:
        # asyncpg's statement cache does this: a 300 s expiry timer per prepared statement, and a cancelled
        # timeout stays in the loop's heap with its context until it would have fired.
        timers.append(loop.call_later(300, lambda: None))

    async def consume_loop() -> None:
        # As FastStream's consume loop: each batch in turn is set in the loop's context, then handled.
        for _ in range(2):
            batch = Batch()
            handled.append(weakref.ref(batch))
            HANDLED.set(batch)
            del batch
            await in_fresh_context(work())

    await asyncio.create_task(consume_loop())
    gc.collect()
    try:
        # The first batch is done with; without the fresh context the first timer's copy of the context
        # holds it for 300 s.
        assert handled[0]() is None
    finally:
        for timer in timers:
            timer.cancel()


async def test_a_callback_scheduled_while_a_batch_is_handled_does_not_see_the_batch():
    seen: list[object] = []
    called = asyncio.Event()

    def callback() -> None:
        seen.append(HANDLED.get(None))
        called.set()

    async def work() -> None:
        asyncio.get_running_loop().call_later(0.01, callback)

    async def handler() -> None:
        HANDLED.set(Batch())
        await in_fresh_context(work())

    await asyncio.create_task(handler())
    await asyncio.wait_for(called.wait(), 1.0)
    assert seen == [None]


async def test_the_work_sees_none_of_the_callers_context_but_binds_its_own():
    HANDLED.set("the message")
    seen: list[object] = []

    async def work() -> None:
        seen.append(HANDLED.get(None))
        HANDLED.set("set inside")

    await in_fresh_context(work())
    assert seen == [None]
    assert HANDLED.get() == "the message"  # what the work set stays in its own context


async def test_cancelling_the_caller_cancels_the_batchs_work():
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    caller = asyncio.create_task(in_fresh_context(work()))
    await asyncio.wait_for(started.wait(), 1.0)
    caller.cancel()
    await asyncio.wait_for(cancelled.wait(), 1.0)  # the work stops with its caller, as it did in the caller's task
    assert caller.cancelled() or caller.done()


async def test_what_the_batchs_work_raises_reaches_the_caller():
    async def work() -> None:
        raise ValueError("refused")

    try:
        await in_fresh_context(work())
    except ValueError as exc:
        assert str(exc) == "refused"
    else:
        raise AssertionError("the work's exception was lost")

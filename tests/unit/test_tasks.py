"""Stopping background tasks: a task that swallows a cancellation still ends, and the stop returns."""

import asyncio

from services.runtime import tasks


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again_and_the_stop_returns(monkeypatch):
    monkeypatch.setattr(tasks, "CANCEL_AGAIN_S", 0.05)
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as 3.11's wait_for does when the awaited thing completes at that moment

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(tasks.cancel_and_wait(task), 5)
    assert task.done() and swallowed == 1


async def test_stopping_no_task_or_a_finished_one_returns_at_once():
    await tasks.cancel_and_wait(None)
    failed = asyncio.create_task(asyncio.sleep(0, result=None))
    await failed
    await asyncio.wait_for(tasks.cancel_and_wait(failed), 1)

"""Stopping a background task so that a stop can never hang on it."""

from __future__ import annotations

import asyncio
import contextlib

# How long one cancellation may take before it is sent again.
CANCEL_AGAIN_S = 1.0


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel the task and wait until it has ended, cancelling it again while it runs on.

    Python 3.11's asyncio.wait_for can swallow a cancellation that arrives as the awaited thing completes
    (gh-86296, fixed in 3.12): the task then runs on, and a stop that awaited it once hung forever. Seen in a
    clean-clone run: the answers relay kept polling PostgreSQL after its ledger was told to stop, and two
    tests hung for their 600 s timeout in the ledger's shutdown. Whatever the task raised is dropped: it
    was being stopped.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_AGAIN_S)
    with contextlib.suppress(BaseException):
        task.result()

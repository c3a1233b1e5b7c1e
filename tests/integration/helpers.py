"""Helpers for tests against real services: run the ledger app, wait for log rows."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

import asyncpg

from services.config import Settings
from services.ledger import build_app


@asynccontextmanager
async def running_ledger(settings: Settings):
    """Run the ledger FastStream app in this event loop for the duration of the block."""
    app, ledger = build_app(settings)
    await app.start()
    try:
        yield ledger
    finally:
        await app.stop()


async def wait_for(dsn: str, sql: str, expected, *args, timeout: float = 60.0):
    """Poll a scalar query until it returns ``expected``; fail with the last value on timeout."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = await conn.fetchval(sql, *args)
            if value == expected:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"{sql!r} returned {value!r}, expected {expected!r} within {timeout} s")
    finally:
        await conn.close()

"""Helpers for tests against real services: run the ledger app, wait for log rows."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from contextlib import asynccontextmanager

import asyncpg

from events import encode, tag_of
from projections.log_row import LogRow
from services.runtime.ledger_app import build_app
from services.runtime.projector import Projector
from services.settings import Settings
from tests.conftest import settings_env


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


async def run_cli(settings, *args: str) -> str:
    """Run `vote-ledger` as an operator would and return its standard output."""
    script = os.path.join(os.path.dirname(sys.executable), "vote-ledger")
    command = (
        [script]
        if os.path.exists(script)
        else [sys.executable, "-c", "import sys; from services.cli import main; sys.exit(main())"]
    )
    proc = await asyncio.create_subprocess_exec(
        *command,
        *args,
        env={**os.environ, **settings_env(settings)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


@asynccontextmanager
async def running_projector(settings: Settings):
    """Run the live projector, logged in as its own login, in this event loop for the block."""
    projector = Projector(settings)
    await projector.start()
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield projector
    finally:
        stop.set()
        await task
        await projector.stop()


def log_row(event, decision: str = "accepted", reason: str | None = None) -> LogRow:
    """A log row for an event, as the ledger would append it."""
    return LogRow(
        meeting_id=event.meeting_id,
        event_id=event.event_id,
        type=tag_of(event),
        control_number=getattr(event, "control_number", None),
        channel=getattr(event, "channel", None),
        executed_at=getattr(event, "executed_at", None),
        received_at=getattr(event, "received_at", None),
        decision=decision,
        reason=reason,
        payload=encode(event).decode(),
    )

"""The API stays responsive: a campaign computed does not hold the event loop, and a stop ends open streams at once."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from events import Position
from services.adapters.kafka.topics import producer, publish
from tests.conftest import settings_env
from tests.factories import POSITIONS, cast, register_event, small_meeting
from tests.integration.helpers import (
    SERVICES_RUN_API,
    api_token,
    running_api,
    running_ledger,
    running_projector,
    wait_for,
)

pytestmark = pytest.mark.integration

CHECKPOINT = "SELECT position FROM projection_checkpoints"
DAY = 24
# More undecided positions than the forecast draws one by one (projections.forecast.EXACT_DRAWS): its
# Monte Carlo then takes seconds of pure Python, as a real register's does.
MANY = [
    *POSITIONS,
    *(Position(control_number=f"R-{n}", kind="registered", shares=100 + n, holders=[f"H{n}"]) for n in range(10, 3010)),
]
VOTES = [
    cast("R-1", {"1.1": "for", "2": "for", "3": "for", "5": "3y"}, executed=1 * DAY),
    cast("B-1", {"1.1": "for", "2": "for", "3": "against"}, executed=3 * DAY, channel="broker"),
    cast("R-2", {"3": "against"}, executed=6 * DAY, channel="phone"),
    cast("B-2", {"1.1": "against", "3": "for"}, executed=9 * DAY, channel="broker"),
    *(cast(f"R-{n}", {"2": "for", "3": "against"}, executed=(2 + n % 11) * DAY) for n in range(10, 1510)),
]
COMMAND = SERVICES_RUN_API


async def _projected(settings, events) -> None:
    """Publish the events and wait until the projector has folded every logged row."""
    async with running_ledger(settings), producer(settings) as kafka, running_projector(settings):
        await publish(kafka, settings, events)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(events))
        await wait_for(settings.pg_dsn, CHECKPOINT, len(events))


async def test_the_api_answers_promptly_while_a_campaign_is_computed(settings):
    await _projected(settings, [small_meeting(outstanding=20_000_000), register_event(MANY), *VOTES])
    token, _ = await api_token(settings)
    headers = {"Authorization": f"Bearer {token}"}
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        assert (await client.get("/v1/meetings")).status_code == 200  # warm: the token, the pool
        started = time.monotonic()
        campaign = asyncio.create_task(client.get("/v1/meetings/m1/campaign"))
        await asyncio.sleep(0.05)  # the request is sent; the replay and the forecast are under way
        waits = []
        while not campaign.done():
            asked = time.monotonic()
            # A token check and a query: a few milliseconds when the event loop is free.
            answer = await client.get("/v1/meetings")
            if not campaign.done():  # answered while the campaign was still being computed
                waits.append(time.monotonic() - asked)
            assert answer.status_code == 200
            await asyncio.sleep(0.02)
        took = time.monotonic() - started
        assert (await campaign).status_code == 200
    # Answered while the campaign was in flight: with the computation on the event loop, none could be.
    # A cheap read, polled every 20 ms: the campaign takes 0.6-3 s (0.67 s on a quiet machine), long enough
    # for several (a /v1/status read, ~0.4 s, sometimes fitted none).
    assert len(waits) >= 3, f"{len(waits)} reads answered during the campaign's {took:.2f} s"
    # A campaign in a thread (the GIL) held a /v1/status read over 2.8 s.
    assert max(waits) < 0.5, f"a read waited up to {max(waits):.2f} s while a campaign of {took:.2f} s ran"


async def test_an_open_stream_ends_when_the_api_stops_without_waiting_or_an_error(settings):
    await _projected(settings, [small_meeting(), register_event()])
    token, _ = await api_token(settings)
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, env={**os.environ, **settings_env(settings)}, stderr=asyncio.subprocess.PIPE
    )
    try:
        base = f"http://127.0.0.1:{settings.api_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for _ in range(300):
                try:
                    await client.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            url = "/v1/meetings/m1/tally/stream"
            async with client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status_code == 200
                lines = response.aiter_lines()
                while (await anext(lines)) != "event: tally":
                    pass
                proc.send_signal(signal.SIGTERM)
                stopping = time.monotonic()
                rest = [line async for line in lines]  # the stream ends (the server closed it)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
            stopped = time.monotonic() - stopping
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = err.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text and "ERROR" not in text and "CancelledError" not in text, text
    # uvicorn's graceful timeout (3 s) was what ended an open stream before.
    assert stopped < 3.0, f"stopping took {stopped:.2f} s"
    assert all(line.startswith(("data:", "id:", "retry:", ":")) or not line for line in rest)

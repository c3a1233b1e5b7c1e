"""Replays of the log (tally as of, diff, call list) cannot monopolise the API: /healthz and light reads answer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import httpx
import pytest

from services.api.heavy import HEAVY_WAIT_S
from services.api.routes.audit import EVENTS_MAX
from tests.conftest import settings_env
from tests.factories import register_event, small_meeting
from tests.integration.helpers import SERVICES_RUN_API, api_token, running_api
from tests.integration.test_api_perf import MANY, VOTES, _projected

pytestmark = pytest.mark.integration

COMMAND = SERVICES_RUN_API


async def _timed(client: httpx.AsyncClient, url: str) -> tuple[float, httpx.Response]:
    asked = time.monotonic()
    response = await client.get(url)
    return time.monotonic() - asked, response


async def test_health_and_light_reads_answer_promptly_while_many_replays_are_asked_for(settings, tmp_path):
    await _projected(settings, [small_meeting(outstanding=20_000_000), register_event(MANY), *VOTES])
    token, _ = await api_token(settings)
    with open(tmp_path / "api.log", "wb") as log:
        proc = subprocess.Popen(COMMAND, env={**os.environ, **settings_env(settings)}, stderr=log)
    try:
        base = f"http://127.0.0.1:{settings.api_port}"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            for _ in range(300):
                try:
                    if (await client.get("/v1/meetings")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            # What the adversarial test sent with an ops token: replays to a far future and distinct limits.
            heavy = [
                *(f"/v1/meetings/m1/tally?as_of=2030-01-01T00:00:{s:02d}Z" for s in range(15)),
                *(f"/v1/meetings/m1/tally/diff?from=0&to={9_000 + n}" for n in range(5)),
                *(f"/v1/meetings/m1/call-list?limit={n}" for n in range(1, 31)),
            ]
            started = time.monotonic()
            replays = [asyncio.create_task(_timed(client, url)) for url in heavy]
            health, light = [], []
            while not all(task.done() for task in replays):
                health.append(await _timed(client, "/healthz"))
                light.append(await _timed(client, "/v1/meetings"))
                await asyncio.sleep(0.1)
            took = time.monotonic() - started
            answers = [await task for task in replays]
            limits = await client.get("/v1/meetings/m1/call-list?limit=1001")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert len(health) >= 3, f"only {len(health)} probes during {took:.1f} s of replays"
    assert all(r.status_code == 200 for _, r in health + light)
    assert max(t for t, _ in health) < 1.0, f"/healthz waited {max(t for t, _ in health):.2f} s"
    assert max(t for t, _ in light) < 2.0, f"/v1/meetings waited {max(t for t, _ in light):.2f} s"
    # Every replay is answered, or refused at once as busy after a bounded wait, never left hanging.
    codes = {r.status_code for _, r in answers}
    assert codes <= {200, 503} and 200 in codes
    for waited, response in answers:
        if response.status_code == 503:
            assert response.json()["code"] == "busy" and response.headers["Retry-After"] == "5"
            assert waited < HEAVY_WAIT_S + 5
    # The call list is one list per position, sliced: each limit's answer is the head of the longest.
    lists = {
        r.json()["limit"]: r.json()["positions"] for _, r in answers if r.status_code == 200 and "limit" in r.json()
    }
    if lists:
        longest = lists[max(lists)]
        assert all(positions == longest[:limit] for limit, positions in lists.items())
    assert (limits.status_code, limits.json()["code"]) == (400, "bad_query")  # at most 1,000 positions


async def test_audit_events_answer_at_most_10000_rows_per_request(settings):
    await _projected(settings, [small_meeting(), register_event()])
    token, _ = await api_token(settings, role="auditor")
    async with (
        running_api(settings) as base,
        httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client,
    ):
        over = await client.get(f"/v1/meetings/m1/audit/events?limit={EVENTS_MAX + 1}")
        at = await client.get(f"/v1/meetings/m1/audit/events?limit={EVENTS_MAX}")
    assert (over.status_code, over.json()["code"]) == (400, "bad_query")
    assert "limit" in over.json()["error"]
    assert at.status_code == 200

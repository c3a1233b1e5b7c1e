"""`vote-ledger services run api` as an operator runs it: it serves, stops on SIGTERM, and a busy port is one line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import httpx
import pytest

from tests.conftest import settings_env
from tests.integration.helpers import SERVICES_RUN_API

pytestmark = pytest.mark.integration

COMMAND = SERVICES_RUN_API


async def test_the_api_serves_until_sigterm_and_exits_0(settings):
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, env={**os.environ, **settings_env(settings)}, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as client:
            for _ in range(300):
                try:
                    response = await client.get("/v1/meetings")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()


async def test_a_port_in_use_is_one_line_and_exit_2(settings):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", settings.api_port))
        busy.listen()
        proc = await asyncio.create_subprocess_exec(
            *COMMAND, env={**os.environ, **settings_env(settings)}, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert err.decode().splitlines() == [
        f"vote-ledger: the API cannot listen on 127.0.0.1:{settings.api_port}: Address already in use;"
        " set VOTE_LEDGER_API_HOST / VOTE_LEDGER_API_PORT"
    ]

"""During a PostgreSQL outage the API answers 503 database_unavailable quietly: one WARNING, no trace, 503 counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn

from services.api.app import create_app
from services.observability import metrics
from services.settings import Settings
from tests.conftest import free_port
from tests.integration.helpers import api_token

pytestmark = pytest.mark.integration

TOKEN = "vl_0123456789ab_" + "a" * 43  # well formed: its lookup is what meets the outage


def _count(status: str) -> float:
    value = metrics.API.get_sample_value(
        "vote_ledger_http_requests_total", {"route": "/v1/meetings", "method": "GET", "status": status}
    )
    return value or 0.0


async def test_requests_during_an_outage_are_503_with_one_warning_no_trace_and_503_in_the_metrics(caplog):
    # A pool whose server does not answer: nothing listens on the port (min_size=0: it connects on acquire).
    pool = await asyncpg.create_pool(f"postgresql://reader@127.0.0.1:{free_port()}/none", min_size=0, max_size=2)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings(), pool=pool), host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    caplog.set_level(logging.INFO)
    before = {status: _count(status) for status in ("500", "503")}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            while not server.started:
                await asyncio.sleep(0.02)
            answers = [await client.get("/v1/meetings", headers={"Authorization": f"Bearer {TOKEN}"}) for _ in range(3)]
    finally:
        server.should_exit = True
        await task
        await pool.close()
    for response in answers:
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "database_unavailable"
    assert "Traceback" not in caplog.text and "Exception in ASGI" not in caplog.text
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "database unavailable" in r.getMessage()]
    assert len(warnings) == 1, caplog.text  # once per outage, not once per request
    assert _count("503") - before["503"] == 3 and _count("500") == before["500"]


class Cuttable:
    """A TCP relay to PostgreSQL that can be cut: its listener and every open connection close at once."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self.writers += [writer, up_writer]

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(ConnectionError, OSError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        self.server = await asyncio.start_server(relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()


async def test_metrics_admits_a_token_verified_in_the_last_10_minutes_while_the_database_is_unreachable(settings):
    from services.adapters.postgres.connect import READER_ROLE, pool_as, role_dsn

    verified_token, _ = await api_token(settings, "ops", name="prometheus")
    unseen_token, _ = await api_token(settings, "ops", name="never-used")
    dsn, _ = role_dsn(settings, READER_ROLE)
    parts = urlsplit(dsn)
    relay = Cuttable(parts.hostname or "127.0.0.1", parts.port or 5432)
    through = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{await relay.start()}")))
    pool = await pool_as(settings.model_copy(update={"pg_reader_dsn": through}), READER_ROLE, size=2)
    app = create_app(settings, pool=pool)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:

            async def scrape(token: str) -> httpx.Response:
                return await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})

            assert (await scrape(verified_token)).status_code == 200  # verified against the database
            await relay.cut()
            during = await scrape(verified_token)
            assert during.status_code == 200 and "vote_ledger_http_requests_total" in during.text
            # A token not verified by this process cannot be told from an unknown or revoked one: no metrics.
            refused = await scrape(unseen_token)
            assert refused.status_code == 503 and refused.json()["code"] == "database_unavailable"
            assert (
                await client.get("/v1/meetings", headers={"Authorization": f"Bearer {verified_token}"})
            ).status_code == 503
            # Past the grace period the memory no longer admits it.
            app.state.recently_verified.clock = lambda: time.monotonic() + 601
            assert (await scrape(verified_token)).status_code == 503
    finally:
        pool.terminate()

"""During a PostgreSQL outage the API answers 503 database_unavailable quietly: one WARNING, no trace, 503 counted."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import httpx
import pytest
import uvicorn

from services.api.app import create_app
from services.observability import metrics
from services.settings import Settings
from tests.conftest import free_port

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

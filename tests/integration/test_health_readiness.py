"""/healthz and /readyz of the ledger, the projector and the API against real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from services.adapters.postgres.connect import READER_ROLE, pool_as
from services.observability import metrics
from services.observability.health_app import ledger_health, projector_health
from services.observability.readiness import api_ready
from services.runtime.projector import Projector
from tests.e2e.conftest import MEETING_FILE
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import append, log_row, run_cli, running_ledger, running_projector


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://health")


async def _until_ready(client: httpx.AsyncClient, timeout: float = 30.0, measured: int = 0) -> httpx.Response:
    """/readyz's first 200 (with lag measured on at least ``measured`` partitions: known after a first fetch)."""
    answer = None
    for _ in range(int(timeout / 0.2)):
        answer = await client.get("/readyz")
        if answer.status_code == 200 and answer.json().get("partitions", 0) >= measured:
            return answer
        await asyncio.sleep(0.2)
    raise AssertionError(f"/readyz never 200: {answer.status_code} {answer.text}")


async def test_a_running_ledger_is_alive_and_ready_once_it_has_its_partitions_and_serves_its_metrics(settings):
    async with running_ledger(settings) as ledger, _client(ledger_health(settings, ledger)) as client:
        assert (await client.get("/healthz")).json() == {"status": "alive"}
        ready = (await _until_ready(client, measured=2)).json()  # votes.submissions and meetings.admin
        assert ready["status"] == "ready" and ready["lag_records"] == 0
        scraped = (await client.get("/metrics")).text
    assert "vote_ledger_consumer_lag{" in scraped
    assert 'vote_ledger_db_pool_connections{state="max"} 2.0' in scraped
    assert "vote_ledger_projector" not in scraped  # the projector's series are on its own endpoint


async def test_the_api_is_not_ready_while_the_projector_lags_past_the_bound_and_ready_once_it_caught_up(settings):
    settings = settings.model_copy(update={"ready_max_lag_s": 0.5})
    conn = await asyncpg.connect(settings.pg_dsn)
    pool = await pool_as(settings, READER_ROLE, size=1)
    try:
        rows = [log_row(small_meeting()), log_row(register_event()), log_row(cast("R-1", {"2": "for"}))]
        head = await append(conn, rows)
        await asyncio.sleep(0.7)  # the oldest unprojected row is now older than the bound
        verdict = await api_ready(pool, True, settings)
        assert not verdict.ok and "behind" in verdict.reason
        assert verdict.detail["lag_positions"] == head and verdict.detail["lag_s"] >= 0.5
        assert not (await api_ready(pool, False, settings)).ok  # no listener: no live stream either
        async with running_projector(settings) as projector, _client(projector_health(settings, projector)) as client:
            ready = (await _until_ready(client)).json()
            assert ready == {"status": "ready", "role": "leader", "checkpoint": head, "lag_positions": 0, "lag_s": 0.0}
            assert (await api_ready(pool, True, settings)).ok
            standby = Projector(settings)
            await standby.start()  # another projector leads: this one stands by, connected
            try:
                answer = await _client(projector_health(settings, standby)).get("/readyz")
                assert answer.json() == {"status": "ready", "role": "standby"}
            finally:
                await standby.stop()
            scraped = (await client.get("/metrics")).text
        assert f"vote_ledger_projector_checkpoint {float(head)}" in scraped
        assert "vote_ledger_projector_lag_seconds 0.0" in scraped
        closed = await _client(projector_health(settings, projector)).get("/readyz")
        # The reason names PostgreSQL: "not connected to PostgreSQL", or the outage tracker's line when this
        # process saw PostgreSQL go away before (the tracker is per process, and tests share one).
        assert closed.status_code == 503 and "PostgreSQL" in closed.json()["reason"]
    finally:
        await pool.close()
        await conn.close()


async def test_the_projector_reports_its_lag_while_it_projects_a_backlog_not_only_once_caught_up(settings):
    settings = settings.model_copy(update={"ready_max_lag_s": 1.0})  # a batch of 4 rows takes far less, even loaded
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        rows = [log_row(small_meeting()), log_row(register_event())]
        rows += [log_row(cast("R-1", {"2": "for" if i % 2 else "against"})) for i in range(300)]  # changes of mind
        head = await append(conn, rows)
    finally:
        await conn.close()
    await asyncio.sleep(1.2)  # a backlog older than the bound, as after a restart
    metrics.PROJECTOR_MEASURED.__init__()  # type: ignore[misc] - a fresh measurement, as in a new process
    metrics.record_projector_lag(0, 0.0)
    fresh = metrics.PROJECTOR_MEASURED.at
    projector = Projector(settings)
    projector.batch_rows = 4  # ~75 batches: the backlog takes a while
    await projector.start()
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    mid_way: list[tuple[int, float, int, str]] = []  # (checkpoint, lag_seconds gauge, lag_positions, /readyz reason)
    try:
        async with _client(projector_health(settings, projector)) as client:
            while projector.position < head:
                scraped = (await client.get("/metrics")).text
                ready = (await client.get("/readyz")).json()
                # Between batches, once a batch has been measured (the position moves just before its measurement)
                if 0 < projector.position < head and metrics.PROJECTOR_MEASURED.at > fresh:
                    seconds = float(scraped.split("\nvote_ledger_projector_lag_seconds ")[1].split()[0])
                    mid_way.append((projector.position, seconds, ready.get("lag_positions", -1), ready.get("reason")))
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await projector.stop()
    assert mid_way, "no scrape fell between two batches"
    assert all(seconds >= 1.0 for _, seconds, _, _ in mid_way), mid_way
    assert all(positions > 0 for _, _, positions, _ in mid_way), mid_way
    assert all(reason and "behind the log" in reason for *_, reason in mid_way), mid_way


async def test_a_ledger_keeping_up_with_steady_ingest_stays_ready_throughout(settings):
    # Records are always in flight under steady ingest (the lag is rarely 0 at a probe): ready means no record
    # has waited longer than the bound, not that the lag was 0 lately.
    settings = settings.model_copy(update={"ready_max_lag_s": 5.0})  # loaded by other suites, 2,000/s fell 6 s behind
    verdicts: list[tuple[int, dict]] = []
    async with running_ledger(settings) as ledger, _client(ledger_health(settings, ledger)) as client:
        await _until_ready(client, measured=2)
        await run_cli(settings, "meeting", "load", str(MEETING_FILE), "--simulated-channels")
        await asyncio.sleep(2.0)  # the register is logged: from here on, only the steady simulation
        simulate = ("simulate", "--meeting-file", str(MEETING_FILE), "--rate", "1000", "--duration", "6", "--quiet")
        simulating = asyncio.create_task(run_cli(settings, *simulate))
        while not simulating.done():
            answer = await client.get("/readyz")
            verdicts.append((answer.status_code, answer.json()))
            await asyncio.sleep(0.3)
        await simulating
    behind = [body for _, body in verdicts if body.get("lag_records", 0) > 0]
    # Records were in flight at some probes (here 2-3 of ~30: the simulation publishes in bursts,
    # so this run seldom shows the old criterion's failure; the unit tests of Backlog pin the difference).
    assert behind, verdicts
    assert [v for v in verdicts if v[0] != 200] == [], [v for v in verdicts if v[0] != 200][:3]


async def test_the_api_says_its_pool_is_busy_not_postgresql_unreachable_when_every_connection_is_taken(settings):
    pool = await pool_as(settings, READER_ROLE, size=1)
    try:
        async with pool.acquire():  # the pool's only connection, held as a long read would
            verdict = await api_ready(pool, True, settings)
        assert not verdict.ok
        assert verdict.reason == "PostgreSQL pool busy: all 1 connections in use for 2 s"
        assert (await api_ready(pool, True, settings)).ok  # released: ready again
    finally:
        await pool.close()
    closed = await api_ready(pool, True, settings)
    assert closed.reason.startswith("PostgreSQL unreachable")  # a closed pool is no busy one

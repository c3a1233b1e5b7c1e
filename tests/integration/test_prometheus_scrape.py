"""A real Prometheus (Debian's package) scrapes the ledger, the projector and the API during a simulated run.

Through Prometheus's own query API: the submissions counter sums to exactly the rows in ledger_log,
and the lag, batch and HTTP series are there. The three run as `vote-ledger services run all`, one
subprocess with three endpoints (its registries hold only this run's counts, and none repeats another's).
The counter's exactness across a batch whose commit failed and was retried is checked in-process.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.adapters.kafka.topics import producer, publish
from services.adapters.postgres import api_tokens
from services.adapters.postgres.connect import READER_ROLE, role_dsn
from services.api.auth import new_token
from services.observability import metrics
from tests.conftest import free_port
from tests.e2e.conftest import MEETING_FILE, Cli
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import run_cli, running_ledger, wait_for

PROMETHEUS = Path("/usr/bin/prometheus")
INSTALL = "sudo apt-get install -y prometheus (or: make system-deps)"


def prometheus_binary() -> Path:
    """Debian's Prometheus; missing, the test fails with the command to install it unless told to skip."""
    if PROMETHEUS.exists():
        return PROMETHEUS
    if os.environ.get("VOTE_LEDGER_SKIP_PROMETHEUS") == "1":
        pytest.skip("VOTE_LEDGER_SKIP_PROMETHEUS=1 and /usr/bin/prometheus is missing")
    pytest.fail(f"/usr/bin/prometheus is missing: {INSTALL}; VOTE_LEDGER_SKIP_PROMETHEUS=1 skips this test")


def scrape_config(ledger: int, projector: int, api: int, token: str) -> str:
    """prometheus.yml: the three targets every second, the API with an ops bearer token."""
    return f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ledger
    static_configs: [{{targets: ["127.0.0.1:{ledger}"]}}]
  - job_name: projector
    static_configs: [{{targets: ["127.0.0.1:{projector}"]}}]
  - job_name: api
    authorization: {{type: Bearer, credentials: "{token}"}}
    static_configs: [{{targets: ["127.0.0.1:{api}"]}}]
"""


async def ops_token(dsn: str) -> str:
    """An ops token stored in the test's database (as `vote-ledger api token issue` does)."""
    text, token_id, digest = new_token()
    conn = await asyncpg.connect(dsn)
    try:
        await api_tokens.issue(conn, token_id, "prometheus", "ops", digest, None)
    finally:
        await conn.close()
    return text


async def query(client: httpx.AsyncClient, promql: str) -> list[dict]:
    """The result vector of an instant query through Prometheus's HTTP API."""
    answer = (await client.get("/api/v1/query", params={"query": promql})).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


async def scalar(client: httpx.AsyncClient, promql: str) -> float | None:
    """The single value of an instant query, or None while it has no sample."""
    result = await query(client, promql)
    return float(result[0]["value"][1]) if result else None


async def until(probe, what: str, timeout: float = 30.0):
    """Await ``probe()`` until it returns a truthy value; fail with ``what`` and the last value on timeout."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what}: still {value!r} after {timeout} s")


async def test_prometheus_sums_the_submission_counter_to_exactly_the_rows_logged(settings, tmp_path):
    binary = prometheus_binary()
    token = await ops_token(settings.pg_dsn)
    services = Cli(settings, tmp_path)
    services.start("services", "run", "all", name="services")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        scrape_config(settings.ledger_metrics_port, settings.projector_metrics_port, settings.api_port, token)
    )
    port = free_port()
    with open(tmp_path / "prometheus.log", "ab") as out:
        prometheus = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            await until(lambda: _up(client), "targets up (ledger, projector, api)", timeout=40)
            await run_cli(settings, "meeting", "load", str(MEETING_FILE), "--simulated-channels")
            simulate = ("simulate", "--meeting-file", str(MEETING_FILE), "--rate", "2000", "--duration", "2")
            await run_cli(settings, *simulate, "--quiet")
            rows = await _settled_count(settings.pg_dsn)
            assert rows > 2_000  # the meeting's register and the simulated submissions

            async def counted() -> bool:
                return await scalar(client, "sum(vote_ledger_submissions_total)") == rows

            await until(counted, f"sum(vote_ledger_submissions_total) == count(*) of ledger_log ({rows})")
            accepted = await scalar(client, 'sum(vote_ledger_submissions_total{decision="accepted"})')
            assert accepted is not None and 0 < accepted < rows  # the simulation sends a few invalid ones

            async def caught_up() -> bool:
                return await scalar(client, "vote_ledger_projector_lag_positions") == 0

            await until(caught_up, "the projector's lag in Prometheus reaches 0")
            assert await scalar(client, "vote_ledger_projector_checkpoint") == rows
            assert await scalar(client, "vote_ledger_log_head") == rows
            assert await scalar(client, "vote_ledger_projector_lag_seconds") == 0

            async def ingested() -> bool:
                return await scalar(client, "sum(vote_ledger_consumer_lag)") == 0

            await until(ingested, "the ledger's consumer lag in Prometheus reaches 0")
            for series in (
                "vote_ledger_consumer_lag",
                "vote_ledger_batch_size_bucket",
                "vote_ledger_batch_seconds_count",
                "vote_ledger_projector_batch_seconds_count",
                'vote_ledger_db_pool_connections{job="ledger",state="max"}',
                'vote_ledger_db_pool_connections{job="api",state="max"}',
                'vote_ledger_http_requests_total{route="/metrics",status="200"}',
                "faststream_received_messages_total",
                'process_resident_memory_bytes{job="projector"}',
            ):
                assert await query(client, series), f"no {series} in Prometheus"
            # One process, three endpoints, and no series on another service's endpoint.
            assert not await query(client, 'vote_ledger_submissions_total{job!="ledger"}')
            assert not await query(client, 'vote_ledger_projector_checkpoint{job!="projector"}')
            assert not await query(client, 'vote_ledger_http_requests_total{job!="api"}')
            # The counted numbers of 018_dashboard_views.sql, read as Grafana would: as the reader login.
            reader = await asyncpg.connect(role_dsn(settings, READER_ROLE)[0])
            try:
                assert await reader.fetchval("SELECT sum(rows) FROM dashboard_submissions_per_minute") == rows
                assert await reader.fetchval("SELECT count(*) FROM dashboard_presence") == 1
                assert await reader.fetchval("SELECT sum(raw_shares) FROM dashboard_item_buckets") > 0
            finally:
                await reader.close()
            async with httpx.AsyncClient(timeout=5) as direct:
                for port_ in (settings.ledger_metrics_port, settings.projector_metrics_port, settings.api_port):
                    ready = await direct.get(f"http://127.0.0.1:{port_}/readyz")
                    assert ready.status_code == 200, ready.text
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=15)
        services.stop_all()


async def _up(client: httpx.AsyncClient) -> bool:
    try:
        return len(await query(client, "up == 1")) == 3
    except httpx.TransportError:
        return False  # Prometheus still starting


async def _settled_count(dsn: str, quiet_s: float = 2.0, timeout: float = 40.0) -> int:
    """count(*) of ledger_log once it has not moved for ``quiet_s``: the ledger has logged everything published."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = await conn.fetchval("SELECT count(*) FROM ledger_log")
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return count
            await asyncio.sleep(0.2)
        raise AssertionError(f"ledger_log still growing after {timeout} s ({last} rows)")
    finally:
        await conn.close()


def _submissions_counted() -> float:
    """sum(vote_ledger_submissions_total) of this process's ledger registry."""
    return sum(
        sample.value
        for family in metrics.LEDGER.collect()
        for sample in family.samples
        if sample.name == "vote_ledger_submissions_total"
    )


async def test_a_batch_retried_after_failed_commits_is_counted_once(settings):
    # The ledger's login loses INSERT: each attempt decides the batch and fails to commit it, then
    # succeeds once INSERT is back. Counted after the commit, the counter moves by the rows logged only.
    admin = await asyncpg.connect(settings.pg_dsn)
    before = _submissions_counted()
    try:
        async with producer(settings) as client:
            await publish(client, settings, [small_meeting(), register_event()])
            async with running_ledger(settings):
                await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2)
                await admin.execute("REVOKE INSERT ON ledger_log FROM vote_ledger_ledger")
                await publish(client, settings, [cast("R-1", {"2": "for"}, executed=i) for i in (1, 2, 3)])
                await asyncio.sleep(2)  # failed attempts, spaced by the back-off
                assert _submissions_counted() - before == 2
                await admin.execute("GRANT INSERT ON ledger_log TO vote_ledger_ledger")
                await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 5, timeout=30)
        assert _submissions_counted() - before == await admin.fetchval("SELECT count(*) FROM ledger_log") == 5
    finally:
        await admin.close()

"""Helpers for tests against real services: run the ledger and projector, append and wait for log rows, run the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from contextlib import asynccontextmanager, contextmanager

import aiokafka.producer.message_accumulator as accumulator
import aiokafka.producer.producer as producer_module
import asyncpg
import pytest
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

from events import encode
from projections.log_row import LogRow, log_row_of
from services.adapters.kafka.topics import producer, publish, publish_raw
from services.adapters.postgres.log import append as log_append
from services.read.export import export_meeting
from services.read.reports import read_final_report
from services.read.tallies import read_tally
from services.runtime.ledger_app import build_app
from services.runtime.projector import Projector
from services.settings import Settings
from tests.conftest import settings_env
from tests.factories import cast, register_event, revoke, small_meeting

# `vote-ledger services run api` as a subprocess, from the interpreter running the tests (no PATH needed).
SERVICES_RUN_API = [
    sys.executable,
    "-c",
    "import sys; from services.cli import main; sys.exit(main())",
    "services",
    "run",
    "api",
]


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
    return log_row_of(event, encode(event).decode(), decision, reason)


async def append(conn, rows) -> int:
    """Append as the ledger does: under the append lock, in one transaction."""
    async with conn.transaction():
        await log_append.lock_log(conn)
        await log_append.known_event_ids(conn, [r.event_id for r in rows])
        return await log_append.append(conn, rows)


async def snapshot(dsn):
    """The projection tables' rows, sorted: what a rebuild must reproduce exactly."""
    conn = await asyncpg.connect(dsn)
    try:
        return (
            [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT meeting_id, present, present_count, events_applied, as_of_position"
                    " FROM tally_meetings ORDER BY 1"
                )
            ],
            [tuple(r) for r in await conn.fetch("SELECT * FROM tally_buckets ORDER BY 1, 2, 3, 4")],
            [
                (r[0], r[1], r[2])
                for r in await conn.fetch(
                    "SELECT meeting_id, control_number, state::text FROM tally_voters ORDER BY 1, 2"
                )
            ],
        )
    finally:
        await conn.close()


async def run_projector(settings, until_position: int) -> None:
    """Run the projector until its checkpoint reaches ``until_position``, then stop it."""
    projector = Projector(settings)
    await projector.start()
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        await wait_for(settings.pg_dsn, "SELECT position FROM projection_checkpoints", until_position)
    finally:
        stop.set()
        await task
        await projector.stop()


async def cli(settings, *args: str) -> tuple[int, str, str]:
    """Run `vote-ledger` and return its exit code, standard output and standard error."""
    command = [sys.executable, "-c", "import sys; from services.cli import main; sys.exit(main())"]
    proc = await asyncio.create_subprocess_exec(
        *command,
        *args,
        env={**os.environ, **settings_env(settings)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


# A small meeting with every kind of row: casts on several channels, a split, a revocation, a rejection.
EXPORT_VOTES = [
    cast("R-1", {"2": "for"}, executed=1),
    cast("R-2", {"2": "against"}, executed=2, channel="phone"),
    cast("B-1", {"3": "for", "2": {"for": 500, "against": 700}}, channel="broker"),
    revoke("R-2", executed=3),
    cast("B-2", {"2": "for"}, channel="broker", discretionary=True),
    cast("X-9", {"2": "for"}),
]
EXPORT_TOTAL = 2 + len(EXPORT_VOTES)


@pytest.fixture
async def exported(settings, tmp_path):
    """A small meeting logged (one message parked), projected and exported: (path, manifest, tally, report)."""
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()] + EXPORT_VOTES)
        await publish_raw(client, settings.admin_topic, [(b"m1", b'{"type": "meeting.scheduled", "v": 1}')])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", EXPORT_TOTAL)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_parked", 1)
    await run_projector(settings, EXPORT_TOTAL)
    conn = await asyncpg.connect(settings.pg_dsn)
    path = tmp_path / "m1.zip"
    manifest = await export_meeting(conn, "m1", path)
    online_tally = await read_tally(conn, "m1")
    online_report = await read_final_report(conn, "m1")
    await conn.close()
    return path, manifest, online_tally, online_report


class RawHeaderKey(str):
    """A header key whose wire bytes are not UTF-8 (the broker stores any bytes; clients cannot send them)."""

    def encode(self, *_args, **_kwargs) -> bytes:
        return b"\xff\xfe"


@contextmanager
def builder_that_sends_raw_header_keys():
    """aiokafka's pure-Python batch builder, which takes the key's bytes from ``str.encode``."""
    modules = (accumulator, producer_module)
    originals = [module.DefaultRecordBatchBuilder for module in modules]
    for module in modules:
        module.DefaultRecordBatchBuilder = _DefaultRecordBatchBuilderPy
    try:
        yield
    finally:
        for module, original in zip(modules, originals, strict=False):
            module.DefaultRecordBatchBuilder = original


@asynccontextmanager
async def running_api(settings: Settings):
    """Serve the HTTP API (services.api.app.serve, uvicorn in this loop) on settings.api_port; yield its base URL."""
    import httpx

    from services.api.app import serve

    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    base = f"http://{settings.api_host}:{settings.api_port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            deadline = time.monotonic() + 30
            while True:
                if task.done():
                    task.result()  # raises what stopped it
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API did not answer /healthz within 30 s"
                await asyncio.sleep(0.05)
        yield base
    finally:
        stop.set()
        await task


async def api_token(settings: Settings, role: str = "ops", name: str = "test") -> tuple[str, str]:
    """Issue an API token as `vote-ledger api token issue` does (the owner's login): (its text, its id)."""
    from services.adapters.postgres import api_tokens
    from services.api.auth import new_token

    text, token_id, digest = new_token()
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        await api_tokens.issue(conn, token_id, name, role, digest, None)
    finally:
        await conn.close()
    return text, token_id

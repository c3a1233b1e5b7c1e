"""Ingest benchmark: pre-published submissions through the ledger into committed log rows."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.config import Settings
from services.demo.loader import prepare
from services.demo.register import build_register, register_events
from services.demo.traffic import generate
from services.kafka_io import ensure_topics, producer, publish
from services.ledger import build_app
from services.postgres.migrate import migrate


async def ingest_benchmark(settings: Settings, meeting_file: Path, events: int, seed: int = 5) -> dict[str, Any]:
    """Publish ``events`` submissions first, then time the ledger until all are committed.

    Runs in a scratch database and topic namespace (dropped afterwards), so it never touches the
    operator's log.
    """
    tag = uuid.uuid4().hex[:10]
    database = f"bench_{tag}"
    admin = await asyncpg.connect(settings.pg_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = urlunsplit(urlsplit(settings.pg_dsn)._replace(path=f"/{database}"))
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        cfg = dataclasses.replace(settings, pg_dsn=dsn, topic_prefix=f"bench{tag}.", consumer_group=f"bench-{tag}")
        await ensure_topics(cfg)
        spec, register_spec, sim, positions = prepare(meeting_file)
        register, entitlements = build_register(spec, register_spec)
        admin_events = [spec, *register_events(spec, register, entitlements)]
        submissions = list(generate(spec, positions, sim, count=events, seed=seed))
        async with producer(cfg) as client:
            await publish(client, cfg, admin_events + submissions)
        total = len(admin_events) + len(submissions)
        app, _ledger = build_app(cfg)
        started = time.perf_counter()
        await app.start()
        try:
            while await conn.fetchval("SELECT count(*) FROM ledger_log") < total:
                await asyncio.sleep(0.05)
        finally:
            elapsed = time.perf_counter() - started
            await app.stop()
            await conn.close()
        return {"submissions": len(submissions), "seconds": round(elapsed, 2),
                "submissions_per_s": round(len(submissions) / elapsed),
                "note": "includes the consumer's start and group join (~1 s)"}
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()

"""Operational status: log head, projector lag, rejects, parked messages and Kafka ingest lag."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.config import Settings
from services.postgres import tally_store
from services.projector import PROJECTION


async def database_status(conn: asyncpg.Connection) -> dict[str, Any]:
    """What the log and projections hold right now."""
    head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM ledger_log")
    checkpoint = await tally_store.checkpoint(conn, PROJECTION)
    decisions = await conn.fetch("SELECT decision, coalesce(reason, '') AS reason, count(*) AS n FROM ledger_log"
                                 " GROUP BY 1, 2 ORDER BY 1, 2")
    parked = await conn.fetchval("SELECT count(*) FROM ledger_parked")
    offsets = await conn.fetch("SELECT topic, partition, next_offset FROM ledger_offsets")
    return {
        "log_head": head,
        "projector_checkpoint": checkpoint,
        "projector_lag": head - checkpoint,
        "accepted": sum(r["n"] for r in decisions if r["decision"] == "accepted"),
        "rejected": {r["reason"]: r["n"] for r in decisions if r["decision"] == "rejected"},
        "parked": parked,
        "stored_offsets": {(r["topic"], r["partition"]): r["next_offset"] for r in offsets},
        # Meetings the projector skips since their rows could not be projected (011_projector.sql).
        "failed_meetings": await tally_store.failure_report(conn, PROJECTION),
    }


async def kafka_lag(settings: Settings, stored: dict[tuple[str, int], int]) -> dict[str, int]:
    """Messages published but not yet committed to the log, per topic."""
    topics = [settings.submissions_topic, settings.admin_topic]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    lag = dict.fromkeys(topics, 0)
    for tp, end in ends.items():
        lag[tp.topic] += end - stored.get((tp.topic, tp.partition), 0)
    return lag


async def status(conn: asyncpg.Connection, settings: Settings) -> dict[str, Any]:
    """Database status plus Kafka ingest lag."""
    db = await database_status(conn)
    db["ingest_lag"] = await kafka_lag(settings, db["stored_offsets"])
    db["stored_offsets"] = {f"{t}/{p}": o for (t, p), o in sorted(db["stored_offsets"].items())}
    return db


async def wait_caught_up(conn: asyncpg.Connection, settings: Settings, timeout: float) -> dict[str, Any]:
    """Wait until Kafka lag and projector lag are both zero (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while True:
        current = await status(conn, settings)
        if (not any(current["ingest_lag"].values()) and current["projector_lag"] == 0) or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.5)

"""Counts over the log for `status`: decisions, parked messages, stored offsets."""

from __future__ import annotations

import asyncpg


async def decision_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """(decision, reason or '', n) over the whole log."""
    return await conn.fetch(
        "SELECT decision, coalesce(reason, '') AS reason, count(*) AS n FROM ledger_log GROUP BY 1, 2 ORDER BY 1, 2"
    )


async def parked_reasons(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """(reason, n) of the parked messages."""
    return await conn.fetch("SELECT reason, count(*) AS n FROM ledger_parked GROUP BY 1 ORDER BY 1")


async def stored_offsets(conn: asyncpg.Connection, consumer_group: str | None) -> list[asyncpg.Record]:
    """(topic, partition, next_offset, idle_s) of one consumer group (None: all), idle since the offset last moved."""
    # Another group's offsets (a rehearsal, a renamed group) are not this ledger's lag.
    return await conn.fetch(
        "SELECT topic, partition, next_offset, extract(epoch FROM clock_timestamp() - updated_at)"
        " AS idle_s FROM ledger_offsets WHERE $1::text IS NULL OR consumer_group = $1",
        consumer_group,
    )

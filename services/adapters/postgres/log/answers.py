"""The answers relay's reads (services/runtime/answers.py): logged submissions, parked messages, its lock."""

from __future__ import annotations

import asyncpg

# Any constant works; with the answers topic's name (hashtext) it names one relay per topic, so two
# deployments (topic prefixes) on one database do not wait for each other.
_RELAY_LOCK_CLASS = 0x616E7377  # "answ"


async def try_lock(conn: asyncpg.Connection, topic: str) -> bool:
    """Take the relay's session lock for this answers topic on ``conn`` if free; whether we hold it now."""
    return await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", _RELAY_LOCK_CLASS, topic)


async def lock_holder(conn: asyncpg.Connection, topic: str) -> str | None:
    """Who holds the relay's lock ("pid N (login)"), for the waiting relay's log line; None if nobody or not visible."""
    row = await conn.fetchrow(
        "SELECT l.pid, a.usename FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid"
        " AND l.objid = ((hashtext($2)::bigint + 4294967296) % 4294967296)::oid AND l.objsubid = 2",
        _RELAY_LOCK_CLASS,
        topic,
    )
    return None if row is None else f"pid {row['pid']} ({row['usename'] or 'another login'})"


async def decided_rows(conn: asyncpg.Connection, topic: str, after: int, limit: int) -> list[asyncpg.Record]:
    """Rows logged from ``topic`` after a position, in log order, with what their answer says.

    channel_id is read from the stored payload's auth (a decoded submission's auth is an object or
    absent). payload_sha256 digests the stored text's UTF-8 bytes, which are the bytes received (the
    ledger stores the value decoded as strict UTF-8, and a json column keeps its text verbatim): computed
    here so the relay does not fetch every payload. Rows without a hash (logged before 006) cannot be
    receipts and get no answer.
    """
    return await conn.fetch(
        "SELECT position, event_id, meeting_id, control_number, decision, reason, hash,"
        " payload->'auth'->>'channel_id' AS channel_id, sha256(convert_to(payload::text, 'UTF8')) AS payload_sha256"
        " FROM ledger_log"
        " WHERE position > $1 AND source_topic = $2 AND hash IS NOT NULL ORDER BY position LIMIT $3",
        after,
        topic,
        limit,
    )


async def parked_messages(conn: asyncpg.Connection, topic: str, after: int, limit: int) -> list[asyncpg.Record]:
    """Messages parked from ``topic`` after an id, in id order (ids are drawn under the append lock: commit order)."""
    return await conn.fetch(
        "SELECT id, source_topic, source_partition, source_offset, value, reason, detail FROM ledger_parked"
        " WHERE id > $1 AND source_topic = $2 ORDER BY id LIMIT $3",
        after,
        topic,
        limit,
    )

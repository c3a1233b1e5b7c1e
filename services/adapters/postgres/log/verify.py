"""The rows `audit verify` checks, as the hash chains see them, and the log-wide checks it runs in SQL."""

from __future__ import annotations

import asyncpg
from asyncpg.cursor import CursorFactory

from projections.chain import ChainRow, ParkedRow

CHAIN_ROWS = (
    "SELECT position, prev_position, meeting_id, event_id, type, decision, reason, payload::text AS payload, hash,"
    " chain_version, recorded_at, source_topic, source_partition, source_offset, appended_at,"
    " control_number, channel, executed_at, received_at, compact"
    " FROM ledger_log WHERE meeting_id = $1 ORDER BY position"
)
PARKED_ROWS = (
    "SELECT id, prev_id, source_topic, source_partition, source_offset, key, value, reason, detail,"
    " parked_at, hash FROM ledger_parked ORDER BY id"
)


def chain_rows(conn: asyncpg.Connection, meeting_id: str) -> CursorFactory:
    """Every row of the meeting (CHAIN_ROWS' columns), streamed (async for) in log order; call it in a transaction."""
    return conn.cursor(CHAIN_ROWS, meeting_id, prefetch=5000)


def parked_rows(conn: asyncpg.Connection) -> CursorFactory:
    """Every parked message, streamed by id; call it in a transaction."""
    return conn.cursor(PARKED_ROWS, prefetch=1000)


def chain_row(record: asyncpg.Record) -> ChainRow:
    """A log row as the chain sees it."""
    return ChainRow(
        record["position"],
        record["prev_position"],
        record["meeting_id"],
        record["event_id"],
        record["type"],
        record["decision"],
        record["reason"],
        record["payload"],
        bytes(record["hash"]) if record["hash"] is not None else None,
        record["chain_version"],
        record["recorded_at"],
        record["source_topic"],
        record["source_partition"],
        record["source_offset"],
        record["appended_at"],
    )


def parked_row(record: asyncpg.Record) -> ParkedRow:
    """A parked message as its chain sees it."""
    return ParkedRow(
        record["id"],
        record["prev_id"],
        record["source_topic"],
        record["source_partition"],
        record["source_offset"],
        _bytes(record["key"]),
        _bytes(record["value"]),
        record["reason"],
        record["detail"],
        record["parked_at"],
        _bytes(record["hash"]),
    )


def _bytes(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)


async def first_missing_position(conn: asyncpg.Connection) -> int | None:
    """The first global position missing from the log, or None.

    A deleted row leaves a hole in the global positions even when it was a meeting's last.
    """
    gap = await conn.fetchval(
        "SELECT min(position) + 1 FROM (SELECT position, lead(position) OVER (ORDER BY position) AS next"
        " FROM ledger_log) AS p WHERE next IS NOT NULL AND next <> position + 1"
    )
    if gap is None and await conn.fetchval("SELECT min(position) FROM ledger_log") not in (None, 1):
        return 1
    return gap


async def orphan_duplicate(conn: asyncpg.Connection, meeting_id: str) -> int | None:
    """The first row of the meeting rejected as duplicate_event_id with no earlier accepted row of its id in it (R18).

    Per meeting (015_event_ids_per_meeting.sql): another meeting's row under the id does not count.
    """
    return await conn.fetchval(
        "SELECT min(d.position) FROM ledger_log d WHERE d.meeting_id = $1 AND d.reason = 'duplicate_event_id'"
        " AND NOT EXISTS (SELECT FROM ledger_log o WHERE o.meeting_id = d.meeting_id AND o.event_id = d.event_id"
        " AND o.position < d.position AND o.decision = 'accepted')",
        meeting_id,
    )

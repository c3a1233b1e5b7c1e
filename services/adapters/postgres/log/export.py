"""The rows an export file holds, streamed from one snapshot (services/read/export.py writes them)."""

from __future__ import annotations

import asyncpg
from asyncpg.cursor import CursorFactory

# Hashes, keys and values in hex, as the export file holds them.
_ROWS = (
    "SELECT position, prev_position, meeting_id, event_id, type, decision, reason, payload::text AS payload,"
    " encode(hash, 'hex') AS hash, recorded_at, chain_version, source_topic, source_partition, source_offset"
    " FROM ledger_log WHERE meeting_id = $1 ORDER BY position"
)
_PARKED = (
    "SELECT id, prev_id, source_topic, source_partition, source_offset, encode(key, 'hex') AS key,"
    " encode(value, 'hex') AS value, reason, detail, parked_at, encode(hash, 'hex') AS hash"
    " FROM ledger_parked ORDER BY id"
)


def meeting_rows(conn: asyncpg.Connection, meeting_id: str) -> CursorFactory:
    """Every row of the meeting in log order, as exported; call it in a transaction."""
    return conn.cursor(_ROWS, meeting_id, prefetch=5000)


def parked_rows(conn: asyncpg.Connection) -> CursorFactory:
    """Every parked message by id, as exported; call it in a transaction."""
    return conn.cursor(_PARKED, prefetch=1000)

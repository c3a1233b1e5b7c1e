"""The rows an export file holds, streamed from one snapshot (services/read/export.py writes them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from asyncpg.cursor import CursorFactory

from services.adapters.postgres.log.verify import PARKED_ROWS

# Hashes in hex, as the export file holds them. Not verify.CHAIN_ROWS on purpose: the file needs neither the
# columns `audit verify` re-judges (control_number, channel, times) nor raw hashes, over millions of rows.
_ROWS = (
    "SELECT position, prev_position, meeting_id, event_id, type, decision, reason, payload::text AS payload,"
    " encode(hash, 'hex') AS hash, recorded_at, chain_version, source_topic, source_partition, source_offset,"
    " appended_at"
    " FROM ledger_log WHERE meeting_id = $1 ORDER BY position"
)


def meeting_rows(conn: asyncpg.Connection, meeting_id: str) -> CursorFactory:
    """Every row of the meeting in log order, as exported; call it in a transaction."""
    return conn.cursor(_ROWS, meeting_id, prefetch=5000)


async def parked_rows(conn: asyncpg.Connection) -> AsyncIterator[dict[str, Any]]:
    """Every parked message by id, as exported (key, value and hash in hex); call it in a transaction."""
    # The statement `audit verify` reads them with: they are few, so hex in Python costs nothing.
    async for record in conn.cursor(PARKED_ROWS, prefetch=1000):
        yield {**record, **{name: _hex(record[name]) for name in ("key", "value", "hash")}}


def _hex(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).hex()

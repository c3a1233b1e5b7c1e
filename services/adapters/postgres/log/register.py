"""The register's chunks as the log holds them, counted in SQL: numbers, announced count, positions, shares.

`status`, `tally` and the reports say whether a meeting's register is complete
(projections.completeness); they need each accepted chunk's numbers, never its positions, so the
sums are taken where the rows are (a large register's payloads stay in PostgreSQL).
"""

from __future__ import annotations

import asyncpg

# Per accepted positions.recorded row. type = 'positions.recorded' lets the planner use the
# partial index ledger_log_admin_rows (014_broker_time_and_channel_keys.sql). Shares are summed as
# numeric: exact, whatever a forged row holds (accepted ones stay below MAX_SHARES in all).
_CHUNKS = (
    "SELECT meeting_id, (payload->>'chunk')::bigint AS chunk, (payload->>'chunks')::bigint AS chunks,"
    " json_array_length(payload->'positions') AS positions,"
    " (SELECT coalesce(sum((p->>'shares')::numeric), 0) FROM json_array_elements(payload->'positions') AS p)"
    " AS shares FROM ledger_log WHERE type = 'positions.recorded' AND decision = 'accepted'"
)


async def meeting_chunks(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> list[asyncpg.Record]:
    """(meeting_id, chunk, chunks, positions, shares) of a meeting's accepted chunks up to a position, in log order."""
    return await conn.fetch(_CHUNKS + " AND meeting_id = $1 AND position <= $2 ORDER BY position", meeting_id, up_to)


async def all_chunks(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """(meeting_id, chunk, chunks, positions, shares) of every meeting's accepted chunks, in log order."""
    return await conn.fetch(_CHUNKS + " ORDER BY position")


async def declared_registers(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """(meeting_id, register) of every accepted meeting.scheduled: its declared RegisterTotals as JSON text, or None."""
    # ->> gives NULL for a missing key and for a JSON null alike: an older meeting declares nothing.
    return await conn.fetch(
        "SELECT meeting_id, payload->>'register' AS register FROM ledger_log"
        " WHERE type = 'meeting.scheduled' AND decision = 'accepted' ORDER BY position"
    )

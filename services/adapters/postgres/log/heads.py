"""Where chains end: what the ledger publishes to ``ledger.heads``, and the anchor a final report states."""

from __future__ import annotations

import asyncpg


async def meeting_heads(conn: asyncpg.Connection, meeting_ids: list[str], up_to: int) -> list[asyncpg.Record]:
    """(meeting_id, position, hash, recorded_at) of each meeting's last row up to a position."""
    # One backward probe of (meeting_id, position) per meeting.
    return await conn.fetch(
        "SELECT m.id AS meeting_id, l.position, l.hash, l.recorded_at FROM unnest($1::text[]) AS m(id)"
        " CROSS JOIN LATERAL (SELECT position, hash, recorded_at FROM ledger_log WHERE meeting_id = m.id"
        " AND position <= $2 ORDER BY position DESC LIMIT 1) AS l",
        meeting_ids,
        up_to,
    )


async def parked_head(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """(id, hash, parked_at, rows) of the parked chain's last link; None before the first."""
    return await conn.fetchrow(
        "SELECT id, hash, parked_at, (SELECT count(*) FROM ledger_parked WHERE hash IS NOT NULL) AS rows"
        " FROM ledger_parked WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1"
    )

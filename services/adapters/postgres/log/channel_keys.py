"""The log's channel-key rows: what meeting administration registered and revoked for a meeting (`channel list`)."""

from __future__ import annotations

import asyncpg

# Both types are admin rows (events.JUDGE_TAGS), so the partial index ledger_log_admin_rows serves this
# query; literal types let the planner see it.
_KEY_ROWS = (
    "SELECT position, type, payload FROM ledger_log WHERE type IN ('channel.key_registered', 'channel.key_revoked')"
    " AND decision = 'accepted' AND meeting_id = $1 ORDER BY position"
)


async def key_rows(conn: asyncpg.Connection, meeting_id: str) -> list[asyncpg.Record]:
    """(position, type, payload) of the meeting's accepted key registrations and revocations, in log order."""
    return await conn.fetch(_KEY_ROWS, meeting_id)

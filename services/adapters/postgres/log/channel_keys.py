"""The log's channel-key rows: what meeting administration registered and revoked for a meeting (`channel list`)."""

from __future__ import annotations

import asyncpg

# Both types are admin rows (events.JUDGE_TAGS), so the partial index ledger_log_admin_rows serves this
# query; literal types let the planner see it.
_KEY_ROWS = (
    "SELECT position, type, payload FROM ledger_log WHERE type IN ('channel.key_registered', 'channel.key_revoked')"
    " AND decision = 'accepted' AND meeting_id = $1 ORDER BY position"
)

_MEETING_LOGGED = (
    "SELECT EXISTS (SELECT 1 FROM ledger_log WHERE type = 'meeting.scheduled' AND decision = 'accepted'"
    " AND meeting_id = $1)"
)


async def key_rows(conn: asyncpg.Connection, meeting_id: str) -> list[asyncpg.Record]:
    """(position, type, payload) of the meeting's accepted key registrations and revocations, in log order."""
    return await conn.fetch(_KEY_ROWS, meeting_id)


async def meeting_logged(conn: asyncpg.Connection, meeting_id: str) -> bool:
    """Whether the log holds the meeting's accepted meeting.scheduled."""
    return bool(await conn.fetchval(_MEETING_LOGGED, meeting_id))


async def register_nominees(conn: asyncpg.Connection, meeting_id: str) -> set[str] | None:
    """The nominees with a position in the meeting's logged register (None: no register logged yet)."""
    from events import PositionsRecorded, decode_logged
    from services.adapters.postgres.log.reads import register_payloads

    payloads = await register_payloads(conn, meeting_id)
    if not payloads:
        return None
    nominees: set[str] = set()
    for payload in payloads:
        chunk = decode_logged(payload)
        assert isinstance(chunk, PositionsRecorded)
        nominees.update(p.nominee for p in chunk.positions if p.nominee is not None)
    return nominees

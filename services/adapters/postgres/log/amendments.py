"""The log's amendment rows (meeting.adjourned, meeting.cutoff_changed, meeting.corrected): decisions and history."""

from __future__ import annotations

import asyncpg

# The three types are admin rows (events.JUDGE_TAGS), so the partial index ledger_log_admin_rows
# (016_amendments.sql) serves these queries; literal types let the planner see it.
_TYPES = "('meeting.adjourned', 'meeting.cutoff_changed', 'meeting.corrected')"
# Event ids are unique per meeting (R18, migration 015): the same id may be another meeting's amendment.
_DECISION = (
    f"SELECT position, decision, reason FROM ledger_log WHERE event_id = $1 AND meeting_id = $2 AND type IN {_TYPES}"
    " ORDER BY position LIMIT 1"
)


async def amendment_decision(conn: asyncpg.Connection, meeting_id: str, event_id: str) -> asyncpg.Record | None:
    """(position, decision, reason) of the meeting's amendment logged under this event id, if any."""
    return await conn.fetchrow(_DECISION, event_id, meeting_id)


# With the poll closures: an amendment effective after the polls closed on every item is not in force
# (projections.meeting.Meeting.in_force), so the meeting as amended needs them too (also admin rows).
_ROWS = (
    "SELECT position, payload FROM ledger_log"
    " WHERE type IN ('meeting.adjourned', 'meeting.cutoff_changed', 'meeting.corrected', 'polls.closed')"
    " AND decision = 'accepted' AND meeting_id = $1 AND position <= $2 ORDER BY position"
)


async def amendment_rows(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> list[asyncpg.Record]:
    """(position, payload) of the meeting's accepted amendments and poll closures up to a position, in log order."""
    return await conn.fetch(_ROWS, meeting_id, up_to)

"""The log's amendment rows (meeting.adjourned, meeting.cutoff_changed, meeting.corrected) as history.

Their decisions, like every admin event's, are read by services.adapters.postgres.log.admin.admin_decision.
"""

from __future__ import annotations

import asyncpg

# The types are admin rows (events.JUDGE_TAGS), so the partial index ledger_log_admin_rows
# (016_amendments.sql) serves this query; literal types let the planner see it. With the poll closures:
# an amendment effective after the polls closed on every item is not in force
# (projections.meeting.Meeting.in_force), so the meeting as amended needs them too.
_ROWS = (
    "SELECT position, payload FROM ledger_log"
    " WHERE type IN ('meeting.adjourned', 'meeting.cutoff_changed', 'meeting.corrected', 'polls.closed')"
    " AND decision = 'accepted' AND meeting_id = $1 AND position <= $2 ORDER BY position"
)


async def amendment_rows(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> list[asyncpg.Record]:
    """(position, payload) of the meeting's accepted amendments and poll closures up to a position, in log order."""
    return await conn.fetch(_ROWS, meeting_id, up_to)

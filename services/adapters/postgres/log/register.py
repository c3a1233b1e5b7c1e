"""The register's rows: the accepted positions.recorded payloads, for completeness, and a load's decisions.

`status`, `tally` and the reports say whether a meeting's register is complete
(projections.completeness); services.read.register reads only each chunk's numbers and shares.
"""

from __future__ import annotations

import asyncpg

# type = 'positions.recorded' lets the planner use the partial index ledger_log_admin_rows
# (014_broker_time_and_channel_keys.sql). payload::text: the json column's stored text, decoded by
# the caller with only the fields it needs. Summing in SQL instead (json_array_elements over the
# positions) took 8 to 16 s for 10^6 positions in 100 chunks, against 1 to 3 s to fetch and decode
# here (measured on the shared 2-core machine, issue 12): json is re-parsed at every -> access.
_CHUNKS = (
    "SELECT meeting_id, payload::text AS payload FROM ledger_log"
    " WHERE type = 'positions.recorded' AND decision = 'accepted'"
)


async def meeting_chunks(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> list[asyncpg.Record]:
    """(meeting_id, payload) of a meeting's accepted chunks up to a log position, in log order."""
    return await conn.fetch(_CHUNKS + " AND meeting_id = $1 AND position <= $2 ORDER BY position", meeting_id, up_to)


async def last_chunk_position(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> int | None:
    """The position of the meeting's last accepted chunk at or below ``up_to`` (None: none yet).

    The log is append-only, so this position fixes the set of chunks a read up to ``up_to`` folds: the key
    under which the API keeps a meeting's register (services.read.register.RegisterCache).
    """
    # With statistics (autovacuum's ANALYZE), the planner walks ledger_log_admin_rows (016_amendments.sql; its
    # predicate holds type = 'positions.recorded') backwards from up_to: a few index entries, 0.05 ms at 100,000
    # positions (EXPLAIN ANALYZE, issue 13). On a table never analyzed it took the meeting's index and
    # filtered its every row instead (2.9 ms for 3,000 votes), still far below a fetch of the chunks.
    return await conn.fetchval(
        "SELECT position FROM ledger_log WHERE type = 'positions.recorded' AND decision = 'accepted'"
        " AND meeting_id = $1 AND position <= $2 ORDER BY position DESC LIMIT 1",
        meeting_id,
        up_to,
    )


async def all_chunks(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """(meeting_id, payload) of every meeting's accepted chunks, in log order."""
    return await conn.fetch(_CHUNKS + " ORDER BY position")


async def declared_registers(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """(meeting_id, register) of every accepted meeting.scheduled: its declared RegisterTotals as JSON text, or None."""
    # ->> gives NULL for a missing key and for a JSON null alike: an older meeting declares nothing.
    return await conn.fetch(
        "SELECT meeting_id, payload->>'register' AS register FROM ledger_log"
        " WHERE type = 'meeting.scheduled' AND decision = 'accepted' ORDER BY position"
    )


# ledger_log_applied_meeting_event_id_key (event_id first, 020_event_id_index.sql) serves event_id = ANY: one
# probe per id. Every row of an id, rejected ones too: a load reports a rejected chunk; the source says which
# record a row came from.
_DECISIONS = (
    "SELECT event_id, position, decision, reason, source_topic, source_partition, source_offset FROM ledger_log"
    " WHERE meeting_id = $1 AND event_id = ANY($2::text[]) ORDER BY position"
)


async def load_decisions(conn: asyncpg.Connection, meeting_id: str, event_ids: list[str]) -> list[asyncpg.Record]:
    """The meeting's rows logged under these event ids (a load's meeting, chunks, keys), in log order."""
    return await conn.fetch(_DECISIONS, meeting_id, event_ids)

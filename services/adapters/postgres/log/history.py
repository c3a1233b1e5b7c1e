"""Auditors' views of the log: a control number's rows, filtered rows, rejections per reason."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def control_number_rows(
    conn: asyncpg.Connection, meeting_id: str, control_number: str, up_to: int
) -> list[asyncpg.Record]:
    """Every row of one control number up to a position, in log order, with its times and payload."""
    return await conn.fetch(
        "SELECT position, event_id, type, channel, executed_at, received_at, appended_at, recorded_at, decision,"
        " reason, payload FROM ledger_log WHERE meeting_id = $1 AND control_number = $2 AND position <= $3"
        " ORDER BY position",
        meeting_id,
        control_number,
        up_to,
    )


async def filtered_rows(
    conn: asyncpg.Connection,
    meeting_id: str,
    *,
    channel: str | None,
    submitted_by: str | None,
    received_from: datetime | None,
    received_to: datetime | None,
    decision: str | None,
    reason: str | None,
    up_to: int,
    limit: int,
) -> list[asyncpg.Record]:
    """A meeting's rows up to a position matching every given filter (None: any), in log order, at most ``limit``.

    The received_at window is half-open, [received_from, received_to).
    """
    return await conn.fetch(
        "SELECT position, event_id, type, control_number, channel, payload->>'submitted_by' AS submitted_by,"
        " executed_at, received_at, appended_at, recorded_at, decision, reason FROM ledger_log WHERE meeting_id = $1"
        " AND ($2::text IS NULL OR channel = $2) AND ($3::text IS NULL OR payload->>'submitted_by' = $3)"
        " AND ($4::timestamptz IS NULL OR received_at >= $4) AND ($5::timestamptz IS NULL OR received_at < $5)"
        " AND ($6::text IS NULL OR decision = $6) AND ($7::text IS NULL OR reason = $7)"
        " AND position <= $8 ORDER BY position LIMIT $9",
        meeting_id,
        channel,
        submitted_by,
        received_from,
        received_to,
        decision,
        reason,
        up_to,
        limit,
    )


async def rejection_counts(conn: asyncpg.Connection, meeting_id: str) -> list[asyncpg.Record]:
    """(reason, n) of the meeting's rejected rows, most frequent first."""
    return await conn.fetch(
        "SELECT reason, count(*) AS n FROM ledger_log WHERE meeting_id = $1 AND decision = 'rejected'"
        " GROUP BY reason ORDER BY count(*) DESC, reason",
        meeting_id,
    )


async def rejection_examples(conn: asyncpg.Connection, meeting_id: str, examples: int) -> list[asyncpg.Record]:
    """The first ``examples`` rejected rows of each reason, by reason then position."""
    return await conn.fetch(
        "SELECT reason, position, event_id, control_number, channel, received_at FROM ("
        " SELECT reason, position, event_id, control_number, channel, received_at,"
        " row_number() OVER (PARTITION BY reason ORDER BY position) AS rank FROM ledger_log"
        " WHERE meeting_id = $1 AND decision = 'rejected') ranked"
        " WHERE rank <= $2 ORDER BY reason, position",
        meeting_id,
        examples,
    )


async def parked_count(conn: asyncpg.Connection) -> int:
    """How many messages are parked, of any meeting (an undecodable message names none)."""
    return await conn.fetchval("SELECT count(*) FROM ledger_parked")

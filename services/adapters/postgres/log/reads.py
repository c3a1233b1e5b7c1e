"""Reads of the log: its head, rows after a position, one meeting's facts and rows."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from asyncpg.cursor import Cursor

from events import COMPACT_FORMAT

# A row's event for the folds, as events.logged_event takes it: the compact form (migration 019), and the
# payload only where there is no compact form of our format (rows logged before 019, or by an older ledger).
# The payload's text is then neither sent nor parsed: the compact form is about a quarter of its bytes.
EVENT_COLUMNS = (
    f"compact, CASE WHEN compact IS NULL OR get_byte(compact, 0) <> {COMPACT_FORMAT} THEN payload END AS payload"
)


async def head(conn: asyncpg.Connection) -> int:
    """The log's last position (0 when empty): a backward probe of the primary key."""
    return await conn.fetchval("SELECT coalesce(max(position), 0) FROM ledger_log")


async def head_and_parked(conn: asyncpg.Connection) -> tuple[int, int]:
    """(log head, number of parked messages) in one query: the version of an answer that reports both.

    ledger_parked is append-only (001_log.sql's triggers, no TRUNCATE since 004), so its count moves
    with every message parked, whether or not the log's head moves.
    """
    row = await conn.fetchrow(
        "SELECT (SELECT coalesce(max(position), 0) FROM ledger_log) AS head,"
        " (SELECT count(*) FROM ledger_parked) AS parked"
    )
    return row["head"], row["parked"]


async def position_at(conn: asyncpg.Connection, when: datetime) -> int:
    """The last position recorded at or before ``when`` (0 if none).

    Positions are numbered in commit order under the append lock, and the ledger never records a
    batch before the previous row's recorded_at (append._log_head), so the rows recorded by a time
    are a prefix of the log: its last position names it. recorded_at is under the hash chain (v2,
    migration 010): `audit verify` names a row whose time was changed to move it across ``when``.
    """
    return await conn.fetchval("SELECT coalesce(max(position), 0) FROM ledger_log WHERE recorded_at <= $1", when)


async def lag(conn: asyncpg.Connection, checkpoint: int) -> tuple[int, float]:
    """Rows after a checkpoint, and the age in seconds of the first of them (0 when there is none).

    Positions are gapless, so the oldest row not yet projected is checkpoint + 1: two probes of the
    primary key (its last entry and one lookup), not a scan, whatever the lag. The age is taken on
    PostgreSQL's clock, the one recorded_at was stamped with.
    """
    row = await conn.fetchrow(
        "SELECT (SELECT coalesce(max(position), 0) FROM ledger_log) AS head,"
        " (SELECT extract(epoch FROM clock_timestamp() - recorded_at)::float8 FROM ledger_log WHERE position = $1)"
        " AS age",
        checkpoint + 1,
    )
    return max(row["head"] - checkpoint, 0), max(row["age"] or 0.0, 0.0)


async def read_after(
    conn: asyncpg.Connection, position: int, limit: int, meeting_id: str | None = None
) -> list[asyncpg.Record]:
    """Rows after a position, in order: (position, meeting_id, type, decision, reason, EVENT_COLUMNS).

    The reason tells the ledger's refusal rows (over_entitlement, R19), which the projector checks
    against its fold, from a channel's vote.refused (reserved_type).
    """
    if meeting_id is None:
        return await conn.fetch(
            f"SELECT position, meeting_id, type, decision, reason, {EVENT_COLUMNS} FROM ledger_log"
            " WHERE position > $1 ORDER BY position LIMIT $2",
            position,
            limit,
        )
    return await conn.fetch(
        f"SELECT position, meeting_id, type, decision, reason, {EVENT_COLUMNS} FROM ledger_log"
        " WHERE meeting_id = $3 AND position > $1 ORDER BY meeting_id, position LIMIT $2",
        position,
        limit,
        meeting_id,
    )


async def meeting_rows(conn: asyncpg.Connection, meeting_id: str, after: int, up_to: int) -> Cursor:
    """Cursor over (position, type, decision, reason, EVENT_COLUMNS) of a meeting's rows in (after, up_to].

    Call it in a transaction. type and reason tell the ledger's refusal rows (R19), which `projections rebuild`
    checks against its fold.
    """
    return await conn.cursor(
        f"SELECT position, type, decision, reason, {EVENT_COLUMNS} FROM ledger_log WHERE meeting_id = $1"
        " AND position > $2 AND position <= $3 ORDER BY position",
        meeting_id,
        after,
        up_to,
    )


async def accepted_votes_of(
    conn: asyncpg.Connection, meeting_id: str, control_numbers: list[str], up_to: int
) -> list[asyncpg.Record]:
    """(control_number, EVENT_COLUMNS) of some control numbers' accepted votes and revocations, in log order."""
    return await conn.fetch(
        f"SELECT control_number, {EVENT_COLUMNS} FROM ledger_log"
        " WHERE meeting_id = $1 AND control_number = ANY($2::text[]) AND position <= $3 AND decision = 'accepted'"
        " AND type IN ('vote.cast', 'vote.revoked') ORDER BY position",
        meeting_id,
        control_numbers,
        up_to,
    )


async def accepted_rows(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> list[asyncpg.Record]:
    """(position, EVENT_COLUMNS) of the meeting's accepted rows up to a position, in log order."""
    return await conn.fetch(
        f"SELECT position, {EVENT_COLUMNS} FROM ledger_log WHERE meeting_id = $1 AND decision = 'accepted'"
        " AND position <= $2 ORDER BY position",
        meeting_id,
        up_to,
    )


async def meeting_logged(conn: asyncpg.Connection, meeting_id: str) -> bool:
    """Whether the log holds at least one row of the meeting."""
    return await conn.fetchval("SELECT EXISTS (SELECT FROM ledger_log WHERE meeting_id = $1)", meeting_id)


async def meeting_row_count(conn: asyncpg.Connection, meeting_id: str, up_to: int | None = None) -> int:
    """How many rows of the meeting the log holds (up to a position, if given)."""
    if up_to is None:
        return await conn.fetchval("SELECT count(*) FROM ledger_log WHERE meeting_id = $1", meeting_id)
    return await conn.fetchval(
        "SELECT count(*) FROM ledger_log WHERE meeting_id = $1 AND position <= $2", meeting_id, up_to
    )


async def scheduled_payload(conn: asyncpg.Connection, meeting_id: str) -> str | None:
    """The payload of the meeting's accepted meeting.scheduled row; None if there is none."""
    return await conn.fetchval(
        "SELECT payload FROM ledger_log WHERE meeting_id = $1 AND type = 'meeting.scheduled'"
        " AND decision = 'accepted' ORDER BY position LIMIT 1",
        meeting_id,
    )


async def scheduled_position(conn: asyncpg.Connection, meeting_id: str) -> int | None:
    """The position of the meeting's accepted meeting.scheduled row (where it was first logged); None if none."""
    return await conn.fetchval(
        "SELECT position FROM ledger_log WHERE meeting_id = $1 AND type = 'meeting.scheduled'"
        " AND decision = 'accepted' ORDER BY position LIMIT 1",
        meeting_id,
    )


async def register_payloads(conn: asyncpg.Connection, meeting_id: str) -> list[str]:
    """The payloads of the meeting's accepted positions.recorded rows (register chunks), in log order."""
    rows = await conn.fetch(
        "SELECT payload FROM ledger_log WHERE meeting_id = $1 AND type = 'positions.recorded'"
        " AND decision = 'accepted' ORDER BY position",
        meeting_id,
    )
    return [r["payload"] for r in rows]


async def digest_rows(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> Cursor:
    """A cursor over what a log digest covers of the meeting's rows up to a position; call it in a transaction."""
    # payload::text: the json column's stored text, whatever codec a connection registers for json.
    return await conn.cursor(
        "SELECT position, event_id, decision, reason, payload::text AS payload FROM ledger_log"
        " WHERE meeting_id = $1 AND position <= $2 ORDER BY position",
        meeting_id,
        up_to,
    )


async def scheduled_payloads(conn: asyncpg.Connection, up_to: int) -> list[asyncpg.Record]:
    """(position, meeting_id, payload) of every accepted meeting.scheduled row up to a position, in log order.

    Served by the admin rows' partial index (016_amendments.sql): its predicate holds meeting.scheduled.
    """
    return await conn.fetch(
        "SELECT position, meeting_id, payload FROM ledger_log WHERE type = 'meeting.scheduled'"
        " AND decision = 'accepted' AND position <= $1 ORDER BY position",
        up_to,
    )

"""Time travel over the log: a meeting's tally as of a past position or time, and diffs between two.

Nothing here reads the projection tables: each answer is a fold from scratch of the log prefix,
so it is what the projector had committed when its checkpoint was at that position.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from events import AnyEvent, decode
from projections.diff import diff, replay_to, report_of
from services.read.tallies import UnknownMeeting

AsOf = int | datetime  # a log position, or a time compared with ledger_log.recorded_at (hashed, v2)


async def resolve(conn: asyncpg.Connection, as_of: AsOf) -> int:
    """The log position an as-of names: itself (at most the head), or the last recorded by then."""
    if isinstance(as_of, int):
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM ledger_log")
        return max(0, min(as_of, head))
    # Positions are numbered in commit order under the append lock, and the ledger never records a
    # batch before the previous row's recorded_at (log_store._log_head), so the rows recorded by a
    # time are a prefix of the log: its last position names it. recorded_at is under the hash chain
    # (v2, migration 010): `audit verify` names a row whose time was changed to move it across T.
    return await conn.fetchval("SELECT coalesce(max(position), 0) FROM ledger_log WHERE recorded_at <= $1", as_of)


async def accepted_entries(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> list[tuple[int, AnyEvent]]:
    """(position, decoded event) of the meeting's accepted rows up to a position, in log order."""
    rows = await conn.fetch(
        "SELECT position, payload FROM ledger_log WHERE meeting_id = $1 AND decision = 'accepted'"
        " AND position <= $2 ORDER BY position",
        meeting_id,
        up_to,
    )
    return [(r["position"], decode(r["payload"])) for r in rows]


async def tally_as_of(conn: asyncpg.Connection, meeting_id: str, as_of: AsOf) -> dict[str, Any]:
    """The tally JSON of docs/wire-contract.md exactly as it stood at a log position or time."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await resolve(conn, as_of)
        entries = await accepted_entries(conn, meeting_id, position)
    tally = replay_to(entries, position).tallies.get(meeting_id)
    if tally is None:
        raise UnknownMeeting(meeting_id)
    return report_of(tally, position)


async def tally_diff(conn: asyncpg.Connection, meeting_id: str, start: AsOf, end: AsOf) -> dict[str, Any]:
    """Per-item deltas from ``start`` to ``end``, and the control numbers and events behind them."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        first, last = await resolve(conn, start), await resolve(conn, end)
        entries = await accepted_entries(conn, meeting_id, max(first, last))
    before = replay_to(entries, first).tallies.get(meeting_id)
    after = replay_to(entries, last).tallies.get(meeting_id)
    if before is None and after is None:
        raise UnknownMeeting(meeting_id)
    low, high = sorted((first, last))
    return diff(before, after, first, last, [(p, e) for p, e in entries if low < p <= high])

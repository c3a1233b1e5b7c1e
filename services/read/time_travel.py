"""Time travel over the log: a meeting's tally as of a past position or time, and diffs between two.

Nothing here reads the projection tables: each answer is a fold from scratch of the log prefix,
so it is what the projector had committed when its checkpoint was at that position.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import asyncpg

from events import AnyEvent, decode
from projections.amendments import as_amended
from projections.diff import diff, replay_to, report_of
from services.adapters.postgres.log import reads as log_reads
from services.read.errors import UnknownMeeting

AsOf = int | datetime  # a log position, or a time compared with when the ledger recorded each row (hashed, v2)


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp; a time without offset is ambiguous, so refused (ValueError with the reason)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from None
    if value.tzinfo is None:
        raise ValueError(f"timestamp needs an offset (e.g. +08:00 or Z): {text!r}")
    return value


def parse_as_of(text: str) -> AsOf:
    """A plain integer is a log position, anything else an RFC 3339 timestamp (CLI --as-of, API as_of)."""
    return int(text) if re.fullmatch(r"\d+", text.strip()) else parse_time(text)


async def resolve(conn: asyncpg.Connection, as_of: AsOf) -> int:
    """The log position an as-of names: itself (at most the head), or the last recorded by then."""
    if isinstance(as_of, int):
        return max(0, min(as_of, await log_reads.head(conn)))
    return await log_reads.position_at(conn, as_of)  # a prefix of the log: see its docstring


async def accepted_entries(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> list[tuple[int, AnyEvent]]:
    """(position, decoded event) of the meeting's accepted rows up to a position, in log order."""
    rows = await log_reads.accepted_rows(conn, meeting_id, up_to)
    return [(r["position"], decode(r["payload"])) for r in rows]


async def tally_as_of(conn: asyncpg.Connection, meeting_id: str, as_of: AsOf) -> dict[str, Any]:
    """The tally JSON of docs/wire-contract.md exactly as it stood at a log position or time."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await resolve(conn, as_of)
        entries = await accepted_entries(conn, meeting_id, position)
    tally = replay_to(entries, position).tallies.get(meeting_id)
    if tally is None:
        raise UnknownMeeting(meeting_id)
    report = report_of(tally, position)
    if tally.meeting.amendments:  # the meeting as amended by the rows up to that point
        report["meeting"] = as_amended(tally.meeting, [(p, e) for p, e in entries if p <= position])
    return report


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
    change = diff(before, after, first, last, [(p, e) for p, e in entries if low < p <= high])
    change["as_of_position"] = high  # the log prefix the diff was read from, as every API answer says
    return change

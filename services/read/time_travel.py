"""Time travel over the log: a meeting's tally as of a past position or time, and diffs between two.

Nothing here reads the projection tables: each answer is a fold from scratch of the log prefix,
so it is what the projector had committed when its checkpoint was at that position.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

import asyncpg

from events import AnyEvent, logged_event
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
    """(position, event) of the meeting's accepted rows up to a position, in log order: compact forms where logged."""
    rows = await log_reads.accepted_rows(conn, meeting_id, up_to)
    return [(r["position"], logged_event(r["compact"], r["payload"])) for r in rows]


async def tally_as_of(
    conn: asyncpg.Connection, meeting_id: str, as_of: AsOf, executor: Executor | None = None
) -> dict[str, Any]:
    """The tally JSON of docs/wire-contract.md exactly as it stood at a log position or time.

    The fold is pure CPU (~1 s at 100,000 positions): the API passes its worker process as ``executor``
    so a replay never holds its event loop (issue 13); the CLI folds here.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await resolve(conn, as_of)
        entries = await accepted_entries(conn, meeting_id, position)
    if executor is None:
        return tally_report_at(meeting_id, position, entries)
    return await asyncio.get_running_loop().run_in_executor(executor, tally_report_at, meeting_id, position, entries)


def tally_report_at(meeting_id: str, position: int, entries: list[tuple[int, AnyEvent]]) -> dict[str, Any]:
    """The tally JSON from the meeting's accepted rows up to ``position`` (pure: picklable in, JSON out)."""
    tally = replay_to(entries, position).tallies.get(meeting_id)
    if tally is None:
        raise UnknownMeeting(meeting_id)
    report = report_of(tally, position)
    if tally.meeting.amendments:  # the meeting as amended by the rows up to that point
        report["meeting"] = as_amended(tally.meeting, [(p, e) for p, e in entries if p <= position])
    return report


async def tally_diff(
    conn: asyncpg.Connection, meeting_id: str, start: AsOf, end: AsOf, executor: Executor | None = None
) -> dict[str, Any]:
    """Per-item deltas from ``start`` to ``end``, and the control numbers and events behind them."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        first, last = await resolve(conn, start), await resolve(conn, end)
        entries = await accepted_entries(conn, meeting_id, max(first, last))
    if executor is None:
        return diff_between(meeting_id, first, last, entries)
    return await asyncio.get_running_loop().run_in_executor(executor, diff_between, meeting_id, first, last, entries)


def diff_between(meeting_id: str, first: int, last: int, entries: list[tuple[int, AnyEvent]]) -> dict[str, Any]:
    """The diff JSON of two positions from the meeting's accepted rows up to the later one (pure)."""
    before = replay_to(entries, first).tallies.get(meeting_id)
    after = replay_to(entries, last).tallies.get(meeting_id)
    if before is None and after is None:
        raise UnknownMeeting(meeting_id)
    low, high = sorted((first, last))
    change = diff(before, after, first, last, [(p, e) for p, e in entries if low < p <= high])
    change["as_of_position"] = high  # the log prefix the diff was read from, as every API answer says
    return change

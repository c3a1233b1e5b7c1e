"""Read side and maintenance of the tally projection: the tally report and a full rebuild."""

from __future__ import annotations

from typing import Any

import asyncpg

from events import MeetingScheduled, decode
from projections.outcomes import tally_report
from projections.replay import Projection
from services.postgres import log_store, tally_store
from services.projector import PROJECTION


class UnknownMeeting(LookupError):
    """No accepted meeting.scheduled with this id is in the log."""


async def meeting_spec(conn: asyncpg.Connection, meeting_id: str) -> MeetingScheduled:
    """The meeting's accepted meeting.scheduled event, from the log."""
    payload = await conn.fetchval(
        "SELECT payload FROM ledger_log WHERE meeting_id = $1 AND type = 'meeting.scheduled'"
        " AND decision = 'accepted' ORDER BY position LIMIT 1", meeting_id)
    if payload is None:
        raise UnknownMeeting(meeting_id)
    return decode(payload)


async def read_tally(conn: asyncpg.Connection, meeting_id: str) -> dict[str, Any]:
    """The tally JSON of domain.md from the projection tables, consistent at one checkpoint."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        spec = await meeting_spec(conn, meeting_id)
        row = await conn.fetchrow("SELECT present, as_of_position FROM tally_meetings WHERE meeting_id = $1", meeting_id)
        position = await tally_store.checkpoint(conn, PROJECTION)
        totals: dict[str, dict[str, int]] = {}
        for b in await conn.fetch(
                "SELECT item_id, option, sum(shares)::bigint AS shares FROM tally_buckets"
                " WHERE meeting_id = $1 GROUP BY item_id, option", meeting_id):
            totals.setdefault(b["item_id"], {})[b["option"]] = b["shares"]
    present = row["present"] if row else 0
    return tally_report(spec, present, totals, as_of_position=position)


async def rebuild(conn: asyncpg.Connection, meeting_id: str) -> int:
    """Replay the meeting from the start of the log into its tables, up to the checkpoint.

    Runs under the projection writers' lock in one transaction, so the live projector neither
    interleaves nor sees a half-built tally; returns the number of log rows replayed.
    """
    async with conn.transaction():
        await tally_store.lock(conn)
        position = await tally_store.checkpoint(conn, PROJECTION)
        projection = Projection()
        replayed, after = 0, 0
        while True:
            rows = await log_store.read_after(conn, after, 50_000, meeting_id=meeting_id)
            rows = [r for r in rows if r["position"] <= position]
            if not rows:
                break
            for row in rows:
                projection.apply_row(row["decision"], row["payload"])
            replayed += len(rows)
            after = rows[-1]["position"]
        tally = projection.tallies.get(meeting_id)
        if tally is None:
            raise UnknownMeeting(meeting_id)
        await tally_store.delete_meeting(conn, meeting_id)
        tally.dirty_buckets.update(tally.buckets)
        tally.dirty_voters.update(tally.voters)
        await tally_store.save_changes(conn, tally, after)
        await tally_store.bump_generation(conn, PROJECTION)
    return replayed

"""Read side and maintenance of the tally projection: the tally report and a full rebuild."""

from __future__ import annotations

from typing import Any

import asyncpg

import msgspec

from events import MeetingScheduled, PositionsRecorded, decode
from projections.outcomes import tally_report
from projections.overvotes import counted_totals
from projections.replay import Projection
from services.postgres import log_store, tally_store
from services.projector import PROJECTION, refold_late


_chunk_decoder = msgspec.json.Decoder(PositionsRecorded)


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


async def meeting_entitlements(conn: asyncpg.Connection, meeting_id: str) -> dict[str, int]:
    """Nominee entitlements from the meeting's accepted register chunks (R17)."""
    entitlements: dict[str, int] = {}
    for row in await conn.fetch(
            "SELECT payload FROM ledger_log WHERE meeting_id = $1 AND type = 'positions.recorded'"
            " AND decision = 'accepted' ORDER BY position", meeting_id):
        for entitlement in _chunk_decoder.decode(row["payload"]).entitlements:
            entitlements[entitlement.nominee] = entitlement.shares
    return entitlements


async def read_counted(conn: asyncpg.Connection, meeting_id: str) -> dict[str, Any]:
    """Everything a report needs from one consistent snapshot of the projection tables."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await read_counted_in_snapshot(conn, meeting_id)


async def read_counted_in_snapshot(conn: asyncpg.Connection, meeting_id: str) -> dict[str, Any]:
    """As read_counted, inside the caller's REPEATABLE READ transaction (to read more at the same point)."""
    spec = await meeting_spec(conn, meeting_id)
    row = await conn.fetchrow("SELECT present FROM tally_meetings WHERE meeting_id = $1", meeting_id)
    position = await tally_store.checkpoint(conn, PROJECTION)
    buckets = {(b["item_id"], b["option"], b["nominee"]): b["shares"] for b in await conn.fetch(
        "SELECT item_id, option, nominee, shares FROM tally_buckets WHERE meeting_id = $1", meeting_id)}
    rejected: dict[tuple[str, str], list[str]] = {}
    for r in await conn.fetch("SELECT nominee, item_id, event_id FROM tally_overvote_rejections"
                              " WHERE meeting_id = $1 ORDER BY event_id", meeting_id):
        rejected.setdefault((r["nominee"], r["item_id"]), []).append(r["event_id"])
    entitlements = await meeting_entitlements(conn, meeting_id)
    totals, overvotes = counted_totals(spec, entitlements, buckets, rejected)
    present = row["present"] if row else 0
    return {"spec": spec, "present": present, "position": position, "totals": totals, "overvotes": overvotes}


async def read_tally(conn: asyncpg.Connection, meeting_id: str) -> dict[str, Any]:
    """The tally JSON of domain.md from the projection tables, consistent at one checkpoint."""
    counted = await read_counted(conn, meeting_id)
    return tally_report(counted["spec"], counted["present"], counted["totals"], as_of_position=counted["position"])


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
            projection.apply_many([decode(r["payload"]) for r in rows if r["decision"] == "accepted"])
            replayed += len(rows)
            after = rows[-1]["position"]
        await refold_late(conn, projection, after)
        tally = projection.tallies.get(meeting_id)
        if tally is None:
            raise UnknownMeeting(meeting_id)
        await tally_store.delete_meeting(conn, meeting_id)
        tally.dirty_buckets.update(tally.buckets)
        tally.dirty_voters.update(tally.voters)
        await tally_store.save_changes(conn, tally, after)
        await tally_store.bump_generation(conn, PROJECTION)
    return replayed

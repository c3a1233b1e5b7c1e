"""The tally read model: a meeting's counted totals and tally JSON from the projection tables."""

from __future__ import annotations

from typing import Any

import asyncpg

from events import MeetingScheduled
from projections.outcomes import tally_report
from projections.overvotes import counted_totals
from services.adapters.postgres import tally_store
from services.adapters.postgres.tally_store import PROJECTION
from services.read.amendments import meeting_as_amended
from services.read.errors import MeetingNotProjected
from services.read.meeting import meeting_spec
from services.read.register import RegisterCache, register_of


async def read_counted(conn: asyncpg.Connection, meeting_id: str, cache: RegisterCache | None = None) -> dict[str, Any]:
    """Everything a report needs from one consistent snapshot of the projection tables.

    ``cache``: a long-lived caller's (the API's) registers, kept across reads; without one (the CLI) the
    register is read from the log, with the same answer.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await read_counted_in_snapshot(conn, meeting_id, cache)


async def projected_point(conn: asyncpg.Connection, meeting_id: str) -> tuple[MeetingScheduled, int, int]:
    """The meeting, its shares present and the projector's checkpoint, in the caller's snapshot (no totals)."""
    spec = await meeting_spec(conn, meeting_id)
    # A meeting the projector could not project keeps its rows as of before the failure: reporting
    # them as the tally would certify numbers that leave votes out (011_projector.sql).
    failed = await tally_store.failures(conn, PROJECTION)
    if meeting_id in failed:
        raise MeetingNotProjected(meeting_id, failed[meeting_id])
    present = await tally_store.present(conn, meeting_id)
    position = await tally_store.checkpoint(conn, PROJECTION)
    return spec, present, position


async def read_counted_in_snapshot(
    conn: asyncpg.Connection, meeting_id: str, cache: RegisterCache | None = None
) -> dict[str, Any]:
    """As read_counted, inside the caller's REPEATABLE READ transaction (to read more at the same point)."""
    spec, present, position = await projected_point(conn, meeting_id)
    buckets = await tally_store.buckets(conn, meeting_id)
    rejected = await tally_store.overvote_rejections(conn, meeting_id)
    # Entitlements (R17) and the register as the rows the tally folded hold them (the projector's
    # checkpoint), as a replay to it would: one fetch and decode of the chunks, or none on a cache hit.
    register = await register_of(conn, spec, position, cache)
    totals, overvotes = counted_totals(spec, register.entitlements, buckets, rejected)
    # The meeting as amended by the rows the tally folded (date, names, titles, recommendations): items and
    # options never change, so the totals above hold for it.
    spec, meeting = await meeting_as_amended(conn, spec, position)
    return {
        "spec": spec,
        "meeting": meeting,
        "present": present,
        "position": position,
        "totals": totals,
        "overvotes": overvotes,
        "register": register.state,
    }


async def read_tally(conn: asyncpg.Connection, meeting_id: str, cache: RegisterCache | None = None) -> dict[str, Any]:
    """The tally JSON of docs/wire-contract.md from the projection tables, consistent at one checkpoint."""
    counted = await read_counted(conn, meeting_id, cache)
    report = tally_report(counted["spec"], counted["present"], counted["totals"], as_of_position=counted["position"])
    report["register"] = counted["register"].as_dict()  # complete or not: an incomplete one leaves positions out
    if counted["meeting"]["amended"]:
        report["meeting"] = counted["meeting"]  # as amended at the checkpoint; absent for an unamended meeting
    return report

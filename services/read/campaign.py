"""The campaign view: turnout by channel and by nominee, the forecast, and the call list, at the tally's checkpoint.

Each read folds the meeting's accepted log rows up to the projector's checkpoint (as time travel does),
so its numbers are the tally's at that position (``read_counted_in_snapshot`` checks the meeting is
projected and gives the position), with what the tables do not keep: each control number's channel and
when it first instructed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from events import VoteCast, VoteRevoked
from projections.diff import replay_to
from projections.fold import Tally
from projections.forecast import first_instructions, forecast
from projections.turnout import call_list as pure_call_list
from projections.turnout import turnout
from services.read.errors import UnknownMeeting
from services.read.tallies import read_counted_in_snapshot
from services.read.time_travel import accepted_entries


async def _fold(
    conn: asyncpg.Connection, meeting_id: str
) -> tuple[dict[str, Any], Tally, list[VoteCast | VoteRevoked]]:
    """The projection's counted numbers, the fold of the log at its checkpoint, and the votes folded."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        counted = await read_counted_in_snapshot(conn, meeting_id)
        entries = await accepted_entries(conn, meeting_id, counted["position"])
    tally = replay_to(entries, counted["position"]).tallies.get(meeting_id)
    if tally is None:
        raise UnknownMeeting(meeting_id)
    votes = [e for _, e in entries if isinstance(e, (VoteCast, VoteRevoked))]
    return counted, tally, votes


async def read_campaign(conn: asyncpg.Connection, meeting_id: str) -> dict[str, Any]:
    """Turnout by channel and by nominee, and the forecast at the polls' close (docs/campaign.md)."""
    counted, tally, votes = await _fold(conn, meeting_id)
    # "Now" is the latest receipt the log holds, not the clock: the answer is a function of the position
    # (its ETag), and a replayed or simulated campaign is projected at its own time.
    now = max((v.received_at for v in votes), default=tally.meeting.meeting_at - timedelta(seconds=1))
    casts = [v for v in votes if isinstance(v, VoteCast)]
    return {
        "meeting_id": meeting_id,
        "as_of_position": counted["position"],
        "outstanding": tally.meeting.spec.outstanding,
        "present": counted["present"],
        **turnout(tally),
        "forecast": forecast(tally, first_instructions(casts), now),
    }


async def call_list(conn: asyncpg.Connection, meeting_id: str, limit: int = 50) -> dict[str, Any]:
    """The ``limit`` largest positions whose holders have not instructed yet (projections.turnout.call_list)."""
    counted, tally, _ = await _fold(conn, meeting_id)
    return {
        "meeting_id": meeting_id,
        "as_of_position": counted["position"],
        "limit": limit,
        "positions": pure_call_list(tally, limit),
    }

"""The campaign view: turnout by channel and by nominee, the forecast, and the call list, at the tally's checkpoint.

Each read folds the meeting's accepted log rows up to the projector's checkpoint (as time travel does),
so its numbers are the tally's at that position (``projected_point`` checks the meeting is
projected and gives the position), with what the tables do not keep: each control number's channel and
when it first instructed.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any

import asyncpg

from events import AnyEvent, VoteCast, VoteRevoked
from projections.diff import replay_to
from projections.fold import Tally
from projections.forecast import first_instructions, forecast
from projections.turnout import call_list as pure_call_list
from projections.turnout import turnout
from services.read.errors import UnknownMeeting
from services.read.tallies import projected_point
from services.read.time_travel import accepted_entries


async def _entries(conn: asyncpg.Connection, meeting_id: str) -> tuple[dict[str, Any], list[tuple[int, AnyEvent]]]:
    """The projection's point (shares present, checkpoint) and the accepted log rows up to it, in one snapshot.

    Only the point: the replay that follows computes the rest, so the tally's totals, over-votes and
    register are not read here.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        _, present, position = await projected_point(conn, meeting_id)
        entries = await accepted_entries(conn, meeting_id, position)
    return {"position": position, "present": present}, entries


def _fold(entries: list[tuple[int, AnyEvent]], position: int, meeting_id: str) -> Tally:
    tally = replay_to(entries, position).tallies.get(meeting_id)
    if tally is None:
        raise UnknownMeeting(meeting_id)
    return tally


def campaign_of(meeting_id: str, position: int, present: int, entries: list[tuple[int, AnyEvent]]) -> dict[str, Any]:
    """The campaign answer from the meeting's accepted rows up to the checkpoint (pure: picklable in, JSON out)."""
    tally = _fold(entries, position, meeting_id)
    votes = [e for _, e in entries if isinstance(e, (VoteCast, VoteRevoked))]
    # "Now" is the latest receipt the log holds, not the clock: the answer is a function of the position
    # (its ETag), and a replayed or simulated campaign is projected at its own time.
    now = max((v.received_at for v in votes), default=tally.meeting.meeting_at - timedelta(seconds=1))
    casts = [v for v in votes if isinstance(v, VoteCast)]
    return {
        "meeting_id": meeting_id,
        "as_of_position": position,
        "outstanding": tally.meeting.spec.outstanding,
        "present": present,
        **turnout(tally),
        "forecast": forecast(tally, first_instructions(casts), now),
    }


def call_list_of(meeting_id: str, position: int, limit: int, entries: list[tuple[int, AnyEvent]]) -> dict[str, Any]:
    """The call list answer from the meeting's accepted rows up to the checkpoint (pure)."""
    tally = _fold(entries, position, meeting_id)
    return {
        "meeting_id": meeting_id,
        "as_of_position": position,
        "limit": limit,
        "positions": pure_call_list(tally, limit),
    }


async def read_campaign(conn: asyncpg.Connection, meeting_id: str, executor: Executor | None = None) -> dict[str, Any]:
    """Turnout by channel and by nominee, and the forecast at the polls' close (docs/campaign.md).

    The replay and the 400-run Monte Carlo are pure CPU (seconds for a few thousand votes): they run in
    ``executor`` (the API's process pool), else in a thread. A thread frees the event loop but not the GIL:
    /v1/status took over 2.8 s instead of 0.35 s while one computed (issue 13), so the API uses a process.
    """
    counted, entries = await _entries(conn, meeting_id)
    return await asyncio.get_running_loop().run_in_executor(
        executor, campaign_of, meeting_id, counted["position"], counted["present"], entries
    )


async def call_list(
    conn: asyncpg.Connection,
    meeting_id: str,
    limit: int = 50,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """The ``limit`` largest positions whose holders have not instructed yet (projections.turnout.call_list)."""
    counted, entries = await _entries(conn, meeting_id)
    return await asyncio.get_running_loop().run_in_executor(
        executor, call_list_of, meeting_id, counted["position"], limit, entries
    )

"""Read side of the amendments: a meeting as amended at a log position (reports, tally)."""

from __future__ import annotations

from typing import Any

import asyncpg

from events import CutoffChanged, MeetingAdjourned, MeetingCorrected, MeetingScheduled, PollsClosed, decode_logged
from projections.amendments import amend, as_amended
from projections.meeting import Meeting
from services.adapters.postgres.log import amendments as log_amendments


async def meeting_as_amended(
    conn: asyncpg.Connection, spec: MeetingScheduled, up_to: int
) -> tuple[MeetingScheduled, dict[str, Any]]:
    """The meeting.scheduled as amended by the rows up to ``up_to``, and its amendments section (JSON).

    Reads only the amendment and poll closure rows (not the register's chunks, which a judge's rebuild would decode
    too): an amendment effective after the polls closed on every item is not in force (Meeting.in_force).
    """
    meeting = Meeting.scheduled(spec)
    applied = []
    for row in await log_amendments.amendment_rows(conn, spec.meeting_id, up_to):
        event = decode_logged(row["payload"])
        if isinstance(event, PollsClosed):
            meeting.close_polls(event)  # amendments effective after the polls closed on every item: not in force
            continue
        if not isinstance(event, (MeetingAdjourned, CutoffChanged, MeetingCorrected)):
            # The adapter selects these types only: another is a broken read, said so even under python -O.
            raise ValueError(f"log row {row['position']} of {spec.meeting_id} is not an amendment")
        amend(meeting, event)
        applied.append((row["position"], event))
    return meeting.as_amended(), as_amended(meeting, applied)

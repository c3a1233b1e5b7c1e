"""A meeting's facts as the log holds them: that it is logged, its schedule, its nominees' entitlements."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from events import MeetingScheduled, decode_logged
from services.adapters.postgres.log import reads as log_reads
from services.read.errors import UnknownMeeting


async def require_logged(conn: asyncpg.Connection, meeting_id: str) -> None:
    """Raise UnknownMeeting unless the log holds at least one row of the meeting."""
    if not await log_reads.meeting_logged(conn, meeting_id):
        raise UnknownMeeting(meeting_id)


async def meeting_spec(conn: asyncpg.Connection, meeting_id: str) -> MeetingScheduled:
    """The meeting's accepted meeting.scheduled event, from the log."""
    payload = await log_reads.scheduled_payload(conn, meeting_id)
    if payload is None:
        raise UnknownMeeting(meeting_id)
    return decode_logged(payload)


async def list_meetings(conn: asyncpg.Connection) -> dict[str, Any]:
    """Every meeting the log holds (an accepted meeting.scheduled), as amended, in the order it was scheduled.

    `vote-ledger meeting list` and GET /v1/meetings. One REPEATABLE READ snapshot at the log head.
    """
    from services.read.amendments import meeting_as_amended

    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await log_reads.head(conn)
        meetings = []
        for row in await log_reads.scheduled_payloads(conn, head):
            spec, amended = await meeting_as_amended(conn, decode_logged(row["payload"]), head)
            meetings.append(
                {
                    "meeting_id": spec.meeting_id,
                    "company": spec.company,
                    "title": spec.title,
                    "record_date": spec.record_date,
                    "meeting_at": spec.meeting_at,  # as amended (an adjournment moves it)
                    "timezone": spec.timezone,
                    "outstanding": spec.outstanding,
                    "items": len(spec.items),
                    "amended": amended["amended"],
                    "scheduled_position": row["position"],
                }
            )
    return {"as_of_position": head, "meetings": msgspec.to_builtins(meetings)}  # dates as RFC 3339 text


async def read_meeting(conn: asyncpg.Connection, meeting_id: str) -> dict[str, Any]:
    """One logged meeting's summary as amended, with its register logged so far (`meeting show --meeting ID --json`).

    GET /v1/meetings/{meeting_id} and `meeting show --meeting ID` both call it (`meeting show FILE` summarises a
    file instead). One REPEATABLE READ snapshot at the log head.
    """
    from services.read.amendments import meeting_as_amended
    from services.read.register import register_at
    from services.read.renderings import meeting_summary

    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await log_reads.head(conn)
        spec = await meeting_spec(conn, meeting_id)
        amended_spec, amended = await meeting_as_amended(conn, spec, head)
        register = await register_at(conn, spec, head)
    summary = {
        **msgspec.to_builtins(meeting_summary(amended_spec)),
        "register": register.as_dict(),
        "as_of_position": head,
    }
    if amended["amended"]:
        summary["meeting"] = amended  # the amendments in force, as the tally JSON gives them
    return summary

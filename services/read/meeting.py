"""A meeting's facts as the log holds them: that it is logged, its schedule, its nominees' entitlements."""

from __future__ import annotations

import asyncpg
import msgspec

from events import MeetingScheduled, PositionsRecorded, decode_logged
from services.adapters.postgres.log import reads as log_reads
from services.read.errors import UnknownMeeting

_chunk_decoder = msgspec.json.Decoder(PositionsRecorded)


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


async def meeting_entitlements(conn: asyncpg.Connection, meeting_id: str) -> dict[str, int]:
    """Nominee entitlements from the meeting's accepted register chunks (R17)."""
    entitlements: dict[str, int] = {}
    for payload in await log_reads.register_payloads(conn, meeting_id):
        for entitlement in _chunk_decoder.decode(payload).entitlements:
            entitlements[entitlement.nominee] = entitlement.shares
    return entitlements

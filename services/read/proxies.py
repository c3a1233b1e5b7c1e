"""Read side of R13: who holds each proxy (from the log) and what they vote (from the tally projection)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from projections.fold import effective
from projections.proxy_report import proxy_report
from services.adapters.postgres import tally_store
from services.adapters.postgres.log import admin as log_admin
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.tally_store import PROJECTION
from services.read.errors import UnknownMeeting


async def read_proxies(conn: asyncpg.Connection, meeting_id: str, as_of: datetime | None = None) -> dict[str, Any]:
    """The proxy report of a meeting at ``as_of`` (None: now), read in one consistent snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        judge = (await log_admin.load_judge(conn, meeting_id=meeting_id)).judge
        if meeting_id not in judge.meetings:
            raise UnknownMeeting(meeting_id)
        head = await log_reads.head(conn)
        checkpoint = await tally_store.checkpoint(conn, PROJECTION)
        voters = await tally_store.voters(conn, meeting_id)
    instructions = ((number, effective(state)) for number, state in voters)
    report = proxy_report(judge.meetings[meeting_id], judge.proxies[meeting_id], instructions, as_of)
    report["log_position"], report["votes_as_of_position"] = head, checkpoint
    report["as_of_position"] = head  # the holders' point (the votes': votes_as_of_position), as every API answer
    return report

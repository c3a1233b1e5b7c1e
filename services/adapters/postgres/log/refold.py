"""Refolds from the log (R12): a late-logged poll closure's control numbers folded again from their rows.

Shared by the projector and the read side's offline checks (verify, rebuild), so neither has to load
the running projector; like load_judge, it reads log rows and hands them to the pure fold.
"""

from __future__ import annotations

import asyncpg

from events import logged_event
from projections.replay import Projection
from services.adapters.postgres.log import reads as log_reads
from services.adapters.postgres.log import refusals as log_refusals


async def refold_meeting(
    conn: asyncpg.Connection, projection: Projection, meeting_id: str, numbers: set[str], up_to: int
) -> None:
    """Fold again, from their log rows, a meeting's control numbers a late-logged poll closure affects (R12).

    Under `reject` the numbers are every voter of the meeting, recounted in log order (Projection.refold).
    """
    if meeting_id in projection.recounts:  # every vote of the meeting, not only these numbers' (R17 `reject`)
        rows = await log_refusals.accepted_submissions(conn, meeting_id, up_to)
    else:
        rows = await log_reads.accepted_votes_of(conn, meeting_id, sorted(numbers), up_to)
    projection.refold(meeting_id, numbers, [logged_event(row["compact"], row["payload"]) for row in rows])


async def refold_late(conn: asyncpg.Connection, projection: Projection, up_to: int) -> None:
    """Fold again, from their log rows, the control numbers a late-logged poll closure affects (R12)."""
    for meeting_id, numbers in projection.take_refolds().items():
        await refold_meeting(conn, projection, meeting_id, numbers, up_to)

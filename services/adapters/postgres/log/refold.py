"""Refolds from the log (R12): a late-logged poll closure's control numbers folded again from their rows.

Shared by the projector and the read side's offline checks (verify, rebuild), so neither has to load
the running projector; like load_judge, it reads log rows and hands them to the pure fold.
"""

from __future__ import annotations

import asyncpg

from events import decode_logged
from projections.replay import Projection
from services.adapters.postgres.log import reads as log_reads


async def refold_meeting(
    conn: asyncpg.Connection, projection: Projection, meeting_id: str, numbers: set[str], up_to: int
) -> None:
    """Fold again, from their log rows, a meeting's control numbers a late-logged poll closure affects (R12)."""
    by_number: dict[str, list] = {n: [] for n in numbers}
    for row in await log_reads.accepted_votes_of(conn, meeting_id, sorted(numbers), up_to):
        by_number[row["control_number"]].append(decode_logged(row["payload"]))
    for number, events in sorted(by_number.items()):
        projection.tallies[meeting_id].refold(number, events)


async def refold_late(conn: asyncpg.Connection, projection: Projection, up_to: int) -> None:
    """Fold again, from their log rows, the control numbers a late-logged poll closure affects (R12)."""
    for meeting_id, numbers in projection.take_refolds().items():
        await refold_meeting(conn, projection, meeting_id, numbers, up_to)

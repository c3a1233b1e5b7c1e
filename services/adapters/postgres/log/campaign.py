"""Reads of the log for the dashboard's time series: a meeting's rows counted per time bucket."""

from __future__ import annotations

import asyncpg

# The channels' submissions (the votes topic); every other row is the meeting's administration or the ledger's own.
SUBMISSION_TYPES = ["vote.cast", "vote.revoked", "proxy.substituted"]


async def span(conn: asyncpg.Connection, meeting_id: str, up_to: int) -> asyncpg.Record:
    """(first, last, rows): when the meeting's first and last rows up to a position were recorded, and how many."""
    return await conn.fetchrow(
        "SELECT min(recorded_at) AS first, max(recorded_at) AS last, count(*) AS rows FROM ledger_log"
        " WHERE meeting_id = $1 AND position <= $2",
        meeting_id,
        up_to,
    )


async def bucket_counts(conn: asyncpg.Connection, meeting_id: str, up_to: int, bucket_s: int) -> list[asyncpg.Record]:
    """(bucket, submission, decision, reason or '', n, last_position) per time bucket of recorded_at.

    bucket = floor(epoch seconds / bucket_s): buckets align on the epoch, so two reads share their edges.
    The last position of a bucket is where the log stood at its end: rows are recorded in position order
    (reads.position_at), so the rows recorded by a time are a prefix of the log.
    """
    return await conn.fetch(
        "SELECT floor(extract(epoch FROM recorded_at) / $3)::bigint AS bucket, type = ANY($4::text[]) AS submission,"
        " decision, coalesce(reason, '') AS reason, count(*) AS n, max(position) AS last_position FROM ledger_log"
        " WHERE meeting_id = $1 AND position <= $2 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        meeting_id,
        up_to,
        bucket_s,
        SUBMISSION_TYPES,
    )

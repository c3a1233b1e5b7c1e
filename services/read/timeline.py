"""The dashboard's time series of a meeting, from the log: rows per time bucket and shares present over time."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

import asyncpg

from projections.outcomes import quorum
from projections.timeline import MAX_BUCKETS, bucket_width, present_series
from services.adapters.postgres.log import campaign as log_campaign
from services.adapters.postgres.log import heads as log_heads
from services.adapters.postgres.log import reads as log_reads
from services.read.meeting import meeting_spec
from services.read.time_travel import accepted_entries


class TooManyBuckets(ValueError):
    """A bucket width that cuts the meeting's span into more than MAX_BUCKETS buckets."""


async def read_timeline(
    conn: asyncpg.Connection, meeting_id: str, bucket_s: int | None = None, executor: Executor | None = None
) -> dict[str, Any]:
    """Per time bucket (the log's recorded_at): submissions accepted, rejections by reason, other rows, and
    shares present at the bucket's end; the log head and the meeting's chain head, all in one snapshot.

    ``bucket_s`` None: a width giving at most 300 buckets (projections.timeline.bucket_width).
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        spec = await meeting_spec(conn, meeting_id)
        head = await log_reads.head(conn)
        span = await log_campaign.span(conn, meeting_id, head)
        width = bucket_s or bucket_width((span["last"] - span["first"]).total_seconds())
        first, last = int(span["first"].timestamp() // width), int(span["last"].timestamp() // width)
        if last - first + 1 > MAX_BUCKETS:
            raise TooManyBuckets(
                f"bucket_s {width} cuts the meeting's {last - first + 1:,} buckets; at most {MAX_BUCKETS:,}"
            )
        rows = await log_campaign.bucket_counts(conn, meeting_id, head, width)
        entries = await accepted_entries(conn, meeting_id, head)
        heads = await log_heads.meeting_heads(conn, [meeting_id], head)
    buckets: dict[int, dict[str, Any]] = {
        b: {"accepted": 0, "rejected": {}, "other": 0, "last_position": 0} for b in range(first, last + 1)
    }
    for r in rows:
        bucket = buckets[r["bucket"]]
        if r["decision"] == "rejected":
            bucket["rejected"][r["reason"]] = bucket["rejected"].get(r["reason"], 0) + r["n"]
        elif r["submission"]:
            bucket["accepted"] += r["n"]
        else:
            bucket["other"] += r["n"]  # accepted administration and the ledger's own rows (vote.refused, ...)
        bucket["last_position"] = max(bucket["last_position"], r["last_position"])
    ends, at = [], 0
    for b in range(first, last + 1):
        at = max(at, buckets[b]["last_position"])  # an empty bucket ends where the one before it did
        ends.append(at)
    # A replay of the meeting (pure CPU, 0.4-1.2 s measured): in ``executor`` (the API's process pool), else a
    # thread, off the event loop (services/read/campaign.read_campaign says why a process).
    present = await asyncio.get_running_loop().run_in_executor(executor, present_series, entries, meeting_id, ends)
    series = [
        {
            "start": datetime.fromtimestamp(b * width, UTC).isoformat(),
            "accepted": buckets[b]["accepted"],
            "rejected": dict(sorted(buckets[b]["rejected"].items())),
            "other": buckets[b]["other"],
            "position": end,
            "present": shares,
        }
        for b, end, shares in zip(range(first, last + 1), ends, present, strict=True)
    ]
    chain = heads[0] if heads else None
    return {
        "meeting_id": meeting_id,
        "as_of_position": head,
        "bucket_s": width,
        "rows": span["rows"],
        "outstanding": spec.outstanding,
        "quorum_required": quorum(spec, 0)["required"],
        "chain_head": None
        if chain is None or chain["hash"] is None
        else {"position": chain["position"], "hash": bytes(chain["hash"]).hex()},
        "buckets": series,
    }

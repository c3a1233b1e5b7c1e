"""The tally projection's tables: load a meeting's fold state, write what changed, checkpoints."""

from __future__ import annotations

from collections import Counter

import asyncpg
import msgspec

from projections.fold import Tally, VoterState
from projections.meeting import Meeting

# Names the projection_checkpoints / projection_failures rows (002_projections.sql, 011_projector.sql)
# of the projection these tally tables hold.
PROJECTION = "tally"

# Serialises projection writers (the live projector and `projections rebuild`) per transaction.
PROJECTOR_LOCK = 0x766F746570726F  # "votepro"
# Held for its whole session by the one active projector: a second one stands by until the
# first's connection ends (PostgreSQL releases a session lock when its backend exits).
LEADER_LOCK = 0x766F74656C6561  # "votelea"
# The projector announces each checkpoint on this channel (pg_notify in the transaction that saves it,
# so PostgreSQL delivers it at commit: a listener never hears of a position before it can read it).
# The API's event streams listen (services/api/listener.py) instead of polling the checkpoint.
PROJECTED_CHANNEL = "tally_projected"
_state_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(VoterState)


async def lock(conn: asyncpg.Connection) -> None:
    """Take the projection writers' lock for the current transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", PROJECTOR_LOCK)


async def try_lead(conn: asyncpg.Connection) -> bool:
    """Try to become the active projector: take the session's leader lock if nobody holds it."""
    return await conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK)


async def failures(conn: asyncpg.Connection, projection: str) -> dict[str, int]:
    """Meetings the projection could not project: meeting -> first log position left out (011_projector.sql)."""
    rows = await conn.fetch("SELECT meeting_id, position FROM projection_failures WHERE projection = $1", projection)
    return {r["meeting_id"]: r["position"] for r in rows}


async def failure_report(conn: asyncpg.Connection, projection: str) -> list[dict]:
    """Every failed meeting with its position, error and time, for status."""
    rows = await conn.fetch(
        "SELECT meeting_id, position, error, failed_at FROM projection_failures"
        " WHERE projection = $1 ORDER BY meeting_id",
        projection,
    )
    return [
        {
            "meeting_id": r["meeting_id"],
            "position": r["position"],
            "error": r["error"],
            "failed_at": r["failed_at"].isoformat(),
        }
        for r in rows
    ]


async def record_failure(conn: asyncpg.Connection, projection: str, meeting_id: str, position: int, error: str) -> None:
    """Record a meeting as failed; call it in the transaction that moves the checkpoint past its rows."""
    await conn.execute(
        "INSERT INTO projection_failures (projection, meeting_id, position, error) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (projection, meeting_id) DO NOTHING",
        projection,
        meeting_id,
        position,
        error[:2000],
    )


async def clear_failure(conn: asyncpg.Connection, projection: str, meeting_id: str) -> bool:
    """Forget a meeting's failure (a rebuild replaced its rows); return whether it had one."""
    status = await conn.execute(
        "DELETE FROM projection_failures WHERE projection = $1 AND meeting_id = $2", projection, meeting_id
    )
    return status != "DELETE 0"


async def checkpoint(conn: asyncpg.Connection, projection: str) -> int:
    """The last log position the projection has committed (0 if never run)."""
    value = await conn.fetchval("SELECT position FROM projection_checkpoints WHERE projection = $1", projection)
    return value or 0


async def checkpoint_and_generation(conn: asyncpg.Connection, projection: str) -> tuple[int, int]:
    """The checkpoint and the rebuild generation in one round trip (the API's ETag: services/api/conditional.py)."""
    row = await conn.fetchrow(
        "SELECT position, generation FROM projection_checkpoints WHERE projection = $1", projection
    )
    return (row["position"], row["generation"]) if row else (0, 0)


async def generation(conn: asyncpg.Connection, projection: str) -> int:
    """How many times the projection's tables were rebuilt (see 004_rebuild_generation.sql)."""
    value = await conn.fetchval("SELECT generation FROM projection_checkpoints WHERE projection = $1", projection)
    return value or 0


async def bump_generation(conn: asyncpg.Connection, projection: str) -> None:
    """Mark the projection's tables as rebuilt, in the rebuild's transaction."""
    await conn.execute(
        "UPDATE projection_checkpoints SET generation = generation + 1 WHERE projection = $1", projection
    )


async def save_checkpoint(conn: asyncpg.Connection, projection: str, position: int) -> None:
    """Record the projection's position and announce it (PROJECTED_CHANNEL); call it in the results' transaction.

    A smaller position than the stored one is refused by 011_projector.sql's trigger.
    """
    await conn.execute(
        "INSERT INTO projection_checkpoints (projection, position) VALUES ($1, $2)"
        " ON CONFLICT (projection) DO UPDATE SET position = excluded.position, updated_at = clock_timestamp()",
        projection,
        position,
    )
    await notify_projected(conn, position)


async def notify_projected(conn: asyncpg.Connection, position: int) -> None:
    """Announce the checkpoint on PROJECTED_CHANNEL; delivered when the caller's transaction commits."""
    await conn.execute("SELECT pg_notify($1, $2)", PROJECTED_CHANNEL, str(position))


async def load_tally(conn: asyncpg.Connection, meeting: Meeting) -> Tally:
    """Rebuild a meeting's in-memory fold from its projection rows."""
    tally = Tally(meeting=meeting)
    row = await conn.fetchrow(
        "SELECT present, present_count, events_applied FROM tally_meetings WHERE meeting_id = $1", meeting.meeting_id
    )
    if row is None:
        return tally
    tally.present, tally.present_count, tally.events_applied = (
        row["present"],
        row["present_count"],
        row["events_applied"],
    )
    tally.buckets = Counter(await buckets(conn, meeting.meeting_id))
    tally.voters = dict(await voters(conn, meeting.meeting_id))
    return tally


async def present(conn: asyncpg.Connection, meeting_id: str) -> int:
    """The meeting's shares present as projected (0 before its first row is)."""
    value = await conn.fetchval("SELECT present FROM tally_meetings WHERE meeting_id = $1", meeting_id)
    return value or 0


async def buckets(conn: asyncpg.Connection, meeting_id: str) -> dict[tuple[str, str, str], int]:
    """The meeting's shares per (item, option, nominee) as projected."""
    rows = await conn.fetch(
        "SELECT item_id, option, nominee, shares FROM tally_buckets WHERE meeting_id = $1", meeting_id
    )
    return {(b["item_id"], b["option"], b["nominee"]): b["shares"] for b in rows}


async def voters(conn: asyncpg.Connection, meeting_id: str) -> list[tuple[str, VoterState]]:
    """Each control number of the meeting with its projected fold state."""
    rows = await conn.fetch("SELECT control_number, state FROM tally_voters WHERE meeting_id = $1", meeting_id)
    return [(v["control_number"], _state_decoder.decode(v["state"])) for v in rows]


async def overvote_rejections(conn: asyncpg.Connection, meeting_id: str) -> dict[tuple[str, str], list[str]]:
    """(nominee, item) -> the event ids refused under R17 `reject`, each list sorted by event id."""
    rejected: dict[tuple[str, str], list[str]] = {}
    for r in await conn.fetch(
        "SELECT nominee, item_id, event_id FROM tally_overvote_rejections WHERE meeting_id = $1 ORDER BY event_id",
        meeting_id,
    ):
        rejected.setdefault((r["nominee"], r["item_id"]), []).append(r["event_id"])
    return rejected


async def save_changes(conn: asyncpg.Connection, tally: Tally, as_of_position: int) -> None:
    """Write the meeting's changed rows (and clear its dirty sets) in the caller's transaction."""
    meeting_id = tally.meeting.meeting_id
    await conn.execute(
        "INSERT INTO tally_meetings (meeting_id, present, present_count, events_applied, as_of_position)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (meeting_id) DO UPDATE SET present = excluded.present,"
        " present_count = excluded.present_count, events_applied = excluded.events_applied,"
        " as_of_position = excluded.as_of_position, updated_at = clock_timestamp()",
        meeting_id,
        tally.present,
        tally.present_count,
        tally.events_applied,
        as_of_position,
    )
    if tally.dirty_buckets:
        keys = sorted(tally.dirty_buckets)
        gone = [k for k in keys if not tally.buckets.get(k)]
        kept = [k for k in keys if tally.buckets.get(k)]
        if gone:
            await conn.execute(
                "DELETE FROM tally_buckets b USING unnest($2::text[], $3::text[], $4::text[]) AS g(i, o, n)"
                " WHERE b.meeting_id = $1 AND b.item_id = g.i AND b.option = g.o AND b.nominee = g.n",
                meeting_id,
                *map(list, zip(*gone, strict=False)),
            )
        if kept:
            await conn.execute(
                "INSERT INTO tally_buckets (meeting_id, item_id, option, nominee, shares)"
                " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[])"
                " ON CONFLICT (meeting_id, item_id, option, nominee) DO UPDATE SET shares = excluded.shares",
                meeting_id,
                *map(list, zip(*kept, strict=False)),
                [tally.buckets[k] for k in kept],
            )
    if tally.dirty_voters:
        numbers = sorted(tally.dirty_voters)
        refused = [
            (event_id, item_id, tally.meeting.positions[n].nominee or "", n)
            for n in numbers
            for event_id, item_id in tally.voters[n].overvote_rejected
        ]
        # A refold (R12) can clear a voter's refusals: rewrite its rows, never only add to them.
        await conn.execute(
            "DELETE FROM tally_overvote_rejections WHERE meeting_id = $1 AND control_number = ANY($2::text[])",
            meeting_id,
            numbers,
        )
        if refused:
            await conn.executemany(
                "INSERT INTO tally_overvote_rejections (meeting_id, event_id, item_id, nominee, control_number)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                [(meeting_id, *r) for r in refused],
            )
        await conn.execute(
            "INSERT INTO tally_voters (meeting_id, control_number, state)"
            " SELECT $1, * FROM unnest($2::text[], $3::json[])"
            " ON CONFLICT (meeting_id, control_number) DO UPDATE SET state = excluded.state",
            meeting_id,
            numbers,
            [_state_encoder.encode(tally.voters[n]).decode() for n in numbers],
        )
    tally.dirty_buckets.clear()
    tally.dirty_voters.clear()


async def delete_meeting(conn: asyncpg.Connection, meeting_id: str) -> None:
    """Remove a meeting's projection rows (before a rebuild, in the same transaction)."""
    for table in ("tally_meetings", "tally_buckets", "tally_voters", "tally_overvote_rejections"):
        await conn.execute(f"DELETE FROM {table} WHERE meeting_id = $1", meeting_id)

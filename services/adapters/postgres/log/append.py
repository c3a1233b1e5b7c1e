"""The ledger's writes to the log: the append lock, batched appends, parked messages, consumed offsets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import asyncpg

from projections import chain
from projections.log_row import LOG_COLUMNS, KnownId, LogRow, ParkedMessage, chained_records

# Appends across every ledger process serialise on one row of ledger_append_lock, locked from
# position assignment until commit, so positions become visible in order (see the comment on
# ledger_log.position in 001_log.sql, and 013_append_lock.sql for why a row, not an advisory lock).
NOTIFY_CHANNEL = "ledger_appended"

PARKED_COLUMNS = (
    "source_topic",
    "source_partition",
    "source_offset",
    "key",
    "value",
    "reason",
    "detail",
    "id",
    "prev_id",
    "hash",
    "parked_at",
)


async def lock_log(conn: asyncpg.Connection) -> None:
    """Take the append lock for the current transaction (released at commit or rollback)."""
    await conn.execute("SELECT FROM ledger_append_lock FOR UPDATE")  # see 013_append_lock.sql


async def known_event_ids(conn: asyncpg.Connection, event_ids: Sequence[str]) -> dict[tuple[str, str], KnownId]:
    """The event_ids among these already in the log, by (meeting_id, event_id), with what was logged under each (R18).

    Call it under the append lock. The payloads tell a redelivery (same bytes: dropped) from another
    message under an id applied in its meeting (logged rejected as duplicate_event_id, see
    015_event_ids_per_meeting.sql). Rows of other meetings under an id come back under their own key.
    """
    if not event_ids:
        return {}
    # A join on unnest probes the event-id index (ledger_log_applied_meeting_event_id_key, event_id first since
    # 020_event_id_index.sql) once per id whatever the plan.
    # `event_id = ANY($1)` under a generic plan made while the log was small (see SERVER_SETTINGS in
    # connect.py) seq-scanned it comparing every row with every id: seconds per batch at 50,000 rows.
    rows = await conn.fetch(
        "SELECT l.meeting_id, l.event_id, l.decision, l.payload::text AS payload FROM unnest($1::text[]) AS u(id)"
        " JOIN ledger_log l ON l.event_id = u.id",
        list(event_ids),
    )
    known: dict[tuple[str, str], KnownId] = {}
    for r in rows:
        entry = known.setdefault((r["meeting_id"], r["event_id"]), KnownId())
        entry.payloads.append(r["payload"].encode())
        entry.applied = entry.applied or r["decision"] == "accepted"
    return known


async def append(conn: asyncpg.Connection, rows: Sequence[LogRow]) -> int:
    """Append rows under the lock with gapless positions and chained hashes via COPY.

    Returns the last position.
    """
    head, recorded_at = await _log_head(conn)
    if rows:
        heads = await chain_heads(conn, sorted({row.meeting_id for row in rows}))
        records = chained_records(rows, head, heads, recorded_at)
        await conn.copy_records_to_table("ledger_log", columns=LOG_COLUMNS, records=records)
        # Delivered at commit only, so a woken reader always finds the rows.
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, str(head + len(rows)))
    return head + len(rows)


async def _log_head(conn: asyncpg.Connection) -> tuple[int, datetime]:
    """The last position, and the instant to record the next rows at. Call it under the lock.

    recorded_at comes from PostgreSQL's clock, the one clock every ledger process shares, and never
    precedes the last row's: `tally --as-of TIME` relies on the rows recorded by a time being a
    prefix of the log, which a clock stepping back (NTP) would otherwise break.
    """
    row = await conn.fetchrow(
        # A backward scan of the primary key, one row: as cheap as max(position).
        "SELECT clock_timestamp() AS now, l.position, l.recorded_at FROM (SELECT 1) AS one LEFT JOIN LATERAL"
        " (SELECT position, recorded_at FROM ledger_log ORDER BY position DESC LIMIT 1) AS l ON true"
    )
    if row["position"] is None:
        return 0, row["now"]
    return row["position"], max(row["now"], row["recorded_at"])


async def chain_heads(conn: asyncpg.Connection, meeting_ids: list[str]) -> dict[str, tuple[int, bytes]]:
    """Each meeting's last (position, hash): where its chain continues. Call it under the lock."""
    rows = await conn.fetch(
        # One index probe per meeting (backward scan of ledger_log_meeting_position, LIMIT 1).
        "SELECT m.id, l.position, l.hash FROM unnest($1::text[]) AS m(id) CROSS JOIN LATERAL"
        " (SELECT position, hash FROM ledger_log WHERE meeting_id = m.id ORDER BY position DESC LIMIT 1) AS l",
        meeting_ids,
    )
    return {r["id"]: (r["position"], r["hash"] or chain.GENESIS) for r in rows}


async def park(conn: asyncpg.Connection, parked: Sequence[ParkedMessage]) -> None:
    """Record undecodable messages on the parked chain; a redelivered one is recorded once."""
    if not parked:
        return
    async with conn.transaction():  # a savepoint inside the caller's: the lock lasts to its commit
        await lock_log(conn)  # ids, chain head and parked_at must not interleave with another ledger's
        sources = [(p.source_topic, p.source_partition, p.source_offset) for p in parked]
        known = {
            (r["source_topic"], r["source_partition"], r["source_offset"])
            for r in await conn.fetch(
                "SELECT source_topic, source_partition, source_offset FROM ledger_parked WHERE (source_topic,"
                " source_partition, source_offset) IN (SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]))",
                *map(list, zip(*sources, strict=False)),
            )
        }
        fresh: dict[tuple[str, int, int], ParkedMessage] = {}
        for source, message in zip(sources, parked, strict=False):
            if source not in known:
                fresh.setdefault(source, message)
        if not fresh:
            return
        head = await conn.fetchrow(
            "SELECT clock_timestamp() AS now, p.id, p.hash, p.parked_at FROM (SELECT 1) AS one LEFT JOIN LATERAL"
            " (SELECT id, hash, parked_at FROM ledger_parked WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1) AS p"
            " ON true"
        )
        prev_id, prev_hash = head["id"], bytes(head["hash"]) if head["hash"] is not None else chain.GENESIS
        parked_at = head["now"] if head["parked_at"] is None else max(head["now"], head["parked_at"])
        ids = sorted(
            r[0]
            for r in await conn.fetch("SELECT nextval('ledger_parked_id_seq') FROM generate_series(1, $1)", len(fresh))
        )
        records = []
        for id_, p in zip(ids, fresh.values(), strict=False):
            hash_ = chain.link(
                prev_hash,
                chain.canonical_parked(
                    id_,
                    prev_id,
                    p.source_topic,
                    p.source_partition,
                    p.source_offset,
                    p.key,
                    p.value,
                    p.reason,
                    p.detail,
                    parked_at,
                ),
            )
            records.append(
                (
                    p.source_topic,
                    p.source_partition,
                    p.source_offset,
                    p.key,
                    p.value,
                    p.reason,
                    p.detail,
                    id_,
                    prev_id,
                    hash_,
                    parked_at,
                )
            )
            prev_id, prev_hash = id_, hash_
        # No ON CONFLICT: under the lock a redelivery was filtered above, and a row silently skipped
        # here would leave its successor pointing at a message that is not there.
        await conn.copy_records_to_table("ledger_parked", columns=PARKED_COLUMNS, records=records)


async def store_offsets(conn: asyncpg.Connection, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Store the next offset to consume per (topic, partition), in the caller's transaction."""
    if offsets:
        topics, partitions, nexts = zip(*((t, p, o) for (t, p), o in offsets.items()), strict=False)
        await conn.execute(
            "INSERT INTO ledger_offsets (consumer_group, topic, partition, next_offset)"
            " SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])"
            " ON CONFLICT (consumer_group, topic, partition)"
            # Never backwards: a slow former owner of a partition must not undo a newer commit.
            " DO UPDATE SET next_offset = GREATEST(ledger_offsets.next_offset, excluded.next_offset),"
            # When the offset last moved: `status` reports a partition stalled by this.
            " updated_at = CASE WHEN excluded.next_offset > ledger_offsets.next_offset THEN clock_timestamp()"
            " ELSE ledger_offsets.updated_at END",
            group,
            list(topics),
            list(partitions),
            list(nexts),
        )


async def load_offsets(
    conn: asyncpg.Connection, group: str, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The stored next offsets for these (topic, partition) pairs; missing ones are absent."""
    pairs = list(partitions)
    if not pairs:
        return {}
    rows = await conn.fetch(
        "SELECT topic, partition, next_offset FROM ledger_offsets"
        " WHERE consumer_group = $1 AND (topic, partition) IN"
        " (SELECT * FROM unnest($2::text[], $3::int[]))",
        group,
        [t for t, _ in pairs],
        [p for _, p in pairs],
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

"""The naive design a user might build instead: upsert each control number's current vote, GROUP BY to tally."""

from __future__ import annotations

import time
import uuid

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from events import MalformedMessage, VoteCast, VoteRevoked, decode, tag_of
from projections.judge import Judge, Received
from services.adapters.kafka.topics import client_options
from services.devtools.bench.scratch import scratch_database
from services.devtools.bench.workload import Workload
from services.settings import Settings

SYSTEM = "naive: upsert current vote + GROUP BY tally"
DESIGN = (
    "one row per control number, latest executed_at wins (R5), revocations void earlier-executed votes (R7); "
    "judged by our rules, rejections kept as rows, no log: superseded votes, payloads and admin events are "
    "not stored, and R6 ballots, R9 recommendations, R10 discretion order and R17 over-votes are not applied"
)
FETCH_BYTES = 8 << 20  # as the ledger's consumer
CONSUME_TIMEOUT_S = 600.0

SCHEMA = """
CREATE TABLE current_votes (
    meeting_id     text NOT NULL,
    control_number text NOT NULL,
    shares         bigint,
    choices        jsonb,
    executed_at    timestamptz,
    -- Kept apart from the vote so a revocation that arrives before the vote it voids still counts:
    -- Kafka keeps order per control number, but a mailed revocation arrives days after it is signed.
    revoked_at     timestamptz,
    revoked        boolean GENERATED ALWAYS AS
                   (executed_at IS NULL OR (revoked_at IS NOT NULL AND executed_at < revoked_at)) STORED,
    PRIMARY KEY (meeting_id, control_number)
);
CREATE TABLE rejections (
    event_id       text PRIMARY KEY,
    meeting_id     text,
    control_number text,
    type           text NOT NULL,
    reason         text NOT NULL
);
"""

UPSERT_CASTS = """
INSERT INTO current_votes (meeting_id, control_number, shares, choices, executed_at)
SELECT m, c, s, j::jsonb, e FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[])
    AS t(m, c, s, j, e)
ON CONFLICT (meeting_id, control_number) DO UPDATE
    SET shares = excluded.shares, choices = excluded.choices, executed_at = excluded.executed_at
    WHERE current_votes.executed_at IS NULL OR excluded.executed_at >= current_votes.executed_at
"""

UPSERT_REVOCATIONS = """
INSERT INTO current_votes (meeting_id, control_number, revoked_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
ON CONFLICT (meeting_id, control_number) DO UPDATE
    SET revoked_at = GREATEST(current_votes.revoked_at, excluded.revoked_at)
"""

INSERT_REJECTIONS = """
INSERT INTO rejections (event_id, meeting_id, control_number, type, reason)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
ON CONFLICT (event_id) DO NOTHING
"""

# A string choice votes every represented share for one option; a split {option: shares} votes its amounts.
TALLY = """
SELECT ch.key AS item, coalesce(split.key, ch.value #>> '{}') AS option,
       sum(coalesce((split.value #>> '{}')::bigint, v.shares))::bigint AS shares
FROM current_votes v
CROSS JOIN LATERAL jsonb_each(v.choices) AS ch
LEFT JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(ch.value) = 'object' THEN ch.value END) AS split ON true
WHERE NOT v.revoked AND (jsonb_typeof(ch.value) = 'string' OR split.key IS NOT NULL)
GROUP BY 1, 2 ORDER BY 1, 2
"""


async def measure(settings: Settings, workload: Workload) -> dict:
    """Consume the published workload into the naive tables, then time the GROUP BY tally on its own."""
    async with scratch_database(settings, "naive", migrated=False) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SCHEMA)
            judge = Judge()
            started = time.perf_counter()
            counts = await _consume(settings, conn, judge)
            seconds = time.perf_counter() - started
            started = time.perf_counter()
            rows = await conn.fetch(TALLY)
            tally_seconds = time.perf_counter() - started
            live = await conn.fetchval("SELECT count(*) FROM current_votes WHERE NOT revoked")
            stored_rejections = await conn.fetchval("SELECT count(*) FROM rejections")
        finally:
            await conn.close()
    tally: dict[str, dict[str, int]] = {}
    for row in rows:
        tally.setdefault(row["item"], {})[row["option"]] = row["shares"]
    return {
        "system": SYSTEM,
        "submissions": counts["submissions"],
        "seconds": round(seconds, 3),
        "submissions_per_s": round(counts["submissions"] / seconds),
        "tally_query_seconds": round(tally_seconds, 4),
        "accepted": counts["accepted"],
        "rejected": counts["rejected"],
        "stored_rejections": stored_rejections,
        "live_votes": live,
        "batches": counts["batches"],
        "tally": tally,
        "design": DESIGN,
    }


async def _consume(settings: Settings, conn: asyncpg.Connection, judge: Judge) -> dict[str, int]:
    """Admin topic to its end into the judge, then every submission, one DB transaction per batch."""
    consumer = AIOKafkaConsumer(
        **client_options(settings, "operator"),
        group_id=f"naive-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=FETCH_BYTES,
    )
    await consumer.start()
    try:
        # The register must be known before any vote is judged, so read the admin topic through first.
        admin = TopicPartition(settings.admin_topic, 0)
        consumer.assign([admin])
        end = (await consumer.end_offsets([admin]))[admin]
        async for batch in _batches(consumer, end):
            for record in batch:
                judge.judge(decode(record.value))
        subs = [TopicPartition(settings.submissions_topic, p) for p in range(settings.submission_partitions)]
        consumer.assign(subs)
        expected = sum((await consumer.end_offsets(subs)).values())
        counts = {"submissions": 0, "accepted": 0, "rejected": 0, "batches": 0}
        async for batch in _batches(consumer, expected):
            accepted, rejected = await _store(conn, judge, batch)
            await consumer.commit()  # after the DB commit: at-least-once, and the upserts are idempotent
            counts["submissions"] += len(batch)
            counts["accepted"] += accepted
            counts["rejected"] += rejected
            counts["batches"] += 1
        return counts
    finally:
        await consumer.stop()


async def _batches(consumer: AIOKafkaConsumer, expected: int):
    """Yield getmany batches (up to 20,000 records, as the ledger) until ``expected`` records came."""
    received = 0
    deadline = time.perf_counter() + CONSUME_TIMEOUT_S
    while received < expected:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"received {received} of {expected} records")
        fetched = await consumer.getmany(timeout_ms=50, max_records=20_000)
        batch = [record for records in fetched.values() for record in records]
        if batch:
            received += len(batch)
            yield batch


async def _store(conn: asyncpg.Connection, judge: Judge, batch: list) -> tuple[int, int]:
    """Judge a batch and write it in one transaction; return (accepted, rejected)."""
    casts: dict[tuple[str, str], tuple] = {}
    revoked: dict[tuple[str, str], object] = {}
    rejections: list[tuple] = []
    accepted = 0
    for record in batch:
        try:
            event = decode(record.value)
        except MalformedMessage as exc:
            where = f"{record.topic}/{record.partition}/{record.offset}"  # no event_id to key it by
            rejections.append((where, None, None, "malformed", exc.reason))
            continue
        reason = judge.judge(event, Received(record.value))  # the bytes its channel signed (S2)
        if reason is not None:
            rejections.append(
                (
                    event.event_id,
                    event.meeting_id,
                    getattr(event, "control_number", None),
                    tag_of(event),
                    reason,
                )
            )
            continue
        accepted += 1
        key = (event.meeting_id, getattr(event, "control_number", None))
        if isinstance(event, VoteCast):
            # ON CONFLICT cannot touch a row twice in one statement: keep the batch's latest first.
            # Records of one control number share a partition, so ">=" lets the later arrival win a tie.
            current = casts.get(key)
            if current is None or event.executed_at >= current[4]:
                shares = event.shares or judge.meetings[event.meeting_id].positions[event.control_number].shares
                casts[key] = (*key, shares, msgspec.json.encode(event.choices).decode(), event.executed_at)
        elif isinstance(event, VoteRevoked):
            if key not in revoked or event.executed_at > revoked[key]:
                revoked[key] = event.executed_at
        # An accepted proxy.substituted only changes the judge's proxy book: nothing to store.
    async with conn.transaction():
        if casts:
            await conn.execute(UPSERT_CASTS, *map(list, zip(*casts.values(), strict=False)))
        if revoked:
            await conn.execute(
                UPSERT_REVOCATIONS, [k[0] for k in revoked], [k[1] for k in revoked], list(revoked.values())
            )
        if rejections:
            await conn.execute(INSERT_REJECTIONS, *map(list, zip(*rejections, strict=False)))
    return accepted, len(rejections)

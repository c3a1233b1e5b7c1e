"""Physical limits of our parts on this machine: raw Kafka produce/consume and raw PostgreSQL COPY."""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from projections.judge import Judge
from projections.log_row import chained_records
from services.adapters.kafka.topics import client_options, producer, publish_raw
from services.adapters.postgres.log import bench as log_bench
from services.adapters.postgres.log import reads as log_reads
from services.devtools.bench.scratch import scratch_database
from services.devtools.bench.workload import Workload
from services.runtime.ingest import Consumed, decide, decode_batch
from services.runtime.rebuild import REPLAY_BATCH
from services.settings import Settings

COPY_BATCH = 20_000  # the ledger's default batch_max: it commits one COPY per batch of this size
CONSUME_TIMEOUT_S = 300.0


async def kafka_limit(settings: Settings, workload: Workload) -> dict:
    """Produce the submissions to a fresh topic with our producer settings, then consume them all."""
    topic = f"{settings.topic_prefix}limit.kafka.{uuid.uuid4().hex[:8]}"
    payloads = workload.submission_payloads
    admin = AIOKafkaAdminClient(**client_options(settings, "operator"))  # creates and deletes a scratch topic
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, settings.submission_partitions, 1)])
        async with producer(settings) as client:
            # Start-up and the new topic's metadata are set-up, not throughput: time the sends only.
            await client.partitions_for(topic)
            started = time.perf_counter()
            produced = await publish_raw(client, topic, payloads)  # returns once every send is acked
            produce_seconds = time.perf_counter() - started
        consumed, consume_seconds = await _consume_all(settings, topic, produced)
    finally:
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()
    size = sum(len(key or b"") + len(value) for key, value in payloads)
    return {
        "messages": produced,
        "consumed": consumed,
        "bytes": size,
        "produce_seconds": round(produce_seconds, 3),
        "consume_seconds": round(consume_seconds, 3),
        "produce_per_s": round(produced / produce_seconds),
        "consume_per_s": round(consumed / consume_seconds),
        "note": "bytes = keys + values; consume time starts after connecting, partitions assigned (no group join)",
    }


async def _consume_all(settings: Settings, topic: str, expected: int) -> tuple[int, float]:
    """Read a topic from the beginning with a fresh group until ``expected`` records arrived."""
    consumer = AIOKafkaConsumer(
        **client_options(settings, "operator"),
        group_id=f"limit-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # The ledger's own fetch bounds (VOTE_LEDGER_PARTITION_FETCH_BYTES / _FETCH_MAX_BYTES), so the limit reads
        # as the ledger's consumer reads.
        fetch_max_bytes=settings.fetch_max_bytes,
        max_partition_fetch_bytes=settings.partition_fetch_bytes,
    )
    await consumer.start()
    try:
        # Assigned, not subscribed: a group join is a fixed start-up cost, not a rate.
        consumer.assign([TopicPartition(topic, p) for p in range(settings.submission_partitions)])
        received = 0
        started = time.perf_counter()
        deadline = started + CONSUME_TIMEOUT_S
        while received < expected:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"consumed {received} of {expected} records of {topic}")
            batch = await consumer.getmany(timeout_ms=500, max_records=100_000)
            received += sum(len(records) for records in batch.values())
        return received, time.perf_counter() - started
    finally:
        await consumer.stop()


def ledger_rows(settings: Settings, workload: Workload) -> list[tuple]:
    """The LOG_COLUMNS tuples the ledger appends for this workload: decoded, judged, chained, hashed."""
    partitioner = DefaultPartitioner()
    partitions = list(range(settings.submission_partitions))
    next_offset = dict.fromkeys(partitions, 0)
    records = [
        Consumed(settings.admin_topic, 0, offset, key, value)
        for offset, (key, value) in enumerate(workload.admin_payloads)
    ]
    for key, value in workload.submission_payloads:
        # The partition and offset Kafka gives the message: same keys, same murmur2 partitioner.
        partition = partitioner(key, partitions, partitions)
        records.append(Consumed(settings.submissions_topic, partition, next_offset[partition], key, value))
        next_offset[partition] += 1
    decoded, parked = decode_batch(records)
    if parked:
        raise ValueError(f"{len(parked)} workload messages do not decode: {parked[0].reason}")
    decided = decide(Judge(), decoded, set(), settings.admin_topic)
    return chained_records(decided.rows, 0, {}, datetime.now(UTC))


async def copy_limit(settings: Settings, workload: Workload) -> dict:
    """COPY the ledger's rows in 20,000-row transactions into a bare table, then into our indexed log."""
    started = time.perf_counter()
    rows = ledger_rows(settings, workload)
    build_seconds = time.perf_counter() - started
    async with scratch_database(settings, "copylimit") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await log_bench.create_bare_copy(conn, "copy_limit")
            bare = await _copy_timed(conn, "copy_limit", rows)
        finally:
            await conn.close()
    # A database of its own, so the bare run's pages and WAL do not favour or burden this one.
    async with scratch_database(settings, "copyindexed") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            indexed = await _copy_timed(conn, log_bench.LOG_TABLE, rows)
            indexes = await log_bench.index_count(conn)
        finally:
            await conn.close()
    return {
        "rows": len(rows),
        "batch_rows": COPY_BATCH,
        "build_seconds": round(build_seconds, 3),
        "unindexed_rows_per_s": round(len(rows) / bare["seconds"]),
        "indexed_rows_per_s": round(len(rows) / indexed["seconds"]),
        "unindexed_seconds": round(bare["seconds"], 3),
        "indexed_seconds": round(indexed["seconds"], 3),
        "unindexed_rows_in_table": bare["count"],
        "indexed_rows_in_table": indexed["count"],
        "unindexed_bytes": bare["bytes"],
        "indexed_bytes": indexed["bytes"],
        "indexed_table_indexes": indexes,
        "index_cost": round(indexed["seconds"] / bare["seconds"], 2),
        "note": f"indexed = our {log_bench.LOG_TABLE} as migrated (PK, unique event_id, 2 indexes, checks); "
        "build = decode + judge + hash chain in Python, not timed in the COPY rates",
    }


async def _copy_timed(conn: asyncpg.Connection, table: str, rows: list[tuple]) -> dict:
    """COPY rows in batches, one transaction (one commit, one WAL flush) per batch, and time it all."""
    started = time.perf_counter()
    for start in range(0, len(rows), COPY_BATCH):
        await log_bench.copy_rows(conn, rows[start : start + COPY_BATCH], into=table)
    seconds = time.perf_counter() - started
    count, size = await log_bench.count_and_size(conn, table)
    return {"seconds": seconds, "count": count, "bytes": size}


# A read of the log from a position on: one batch of rows (empty at the end).
Reader = Callable[[int], Awaitable[list]]


def replay_reader(conn: asyncpg.Connection, meeting_id: str) -> Reader:
    """The replay's own read: its batches, its columns (the compact form; the payload only where there is none)."""
    return lambda after: log_reads.read_after(conn, after, REPLAY_BATCH, meeting_id=meeting_id)


def payload_reader(conn: asyncpg.Connection, meeting_id: str) -> Reader:
    """The replay's read before migration 019: the same batches with the payload instead of the compact form."""
    return lambda after: log_bench.rows_after(conn, meeting_id, after, REPLAY_BATCH, log_bench.PAYLOAD_COLUMNS)


def full_reader(conn: asyncpg.Connection, meeting_id: str) -> Reader:
    """Whole rows (every column, the payload and the compact form) in the replay's batches."""
    return lambda after: log_bench.rows_after(conn, meeting_id, after, REPLAY_BATCH, log_bench.ALL_COLUMNS)


async def read_pass(read: Reader, each: Callable[[list], object] | None = None) -> float:
    """Seconds to read every row through ``read`` with the GC paused (as in the replay), ``each`` called per batch."""
    gc.disable()
    try:
        started, after = time.perf_counter(), 0
        while rows := await read(after):
            if each is not None:
                each(rows)
            after = rows[-1]["position"]
        return time.perf_counter() - started
    finally:
        gc.enable()


async def read_limit(conn: asyncpg.Connection, meeting_id: str) -> dict:
    """The replay's read limit: the meeting's rows read as the replay reads them (same columns), and whole rows."""
    rows = await log_reads.meeting_row_count(conn, meeting_id)
    same = await read_pass(replay_reader(conn, meeting_id))
    full = await read_pass(full_reader(conn, meeting_id))
    return {
        "rows": rows,
        "seconds": same,
        "full_seconds": full,
        "rows_per_s": round(rows / same),
        "full_rows_per_s": round(rows / full),
        "note": "rows_per_s reads the replay's columns (compact form, payload only where none); full: every column",
    }

"""Where the answers relay stopped: the cursor each answer carries, read back from the topic's last committed answers.

Every answer has a header ``answered_through`` = "<position> <parked id>": the relay's cursor once that
answer is published. Answers are published in order, so the highest cursor among each partition's last
committed answer is where the relay stopped; records of aborted transactions and transaction markers
are skipped (read committed, with raw fetches as `audit verify` reads ledger.heads).
"""

from __future__ import annotations

import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.adapters.kafka import raw as kafka_raw
from services.adapters.kafka.topics import client_options, partitions_of, started
from services.settings import Settings

log = logging.getLogger("vote_ledger.answers")

CURSOR_HEADER = "answered_through"


class CursorUnreadable(RuntimeError):
    """The answers topic could not be read back to find where the relay stopped."""


def cursor_header(position: int, parked_id: int) -> tuple[str, bytes]:
    """The header an answer carries: the relay's cursor once it is published."""
    return CURSOR_HEADER, f"{position} {parked_id}".encode()


def read_cursor(headers: list[tuple[bytes, bytes | None]]) -> tuple[int, int] | None:
    """(position, parked id) from a record's headers; None if it carries no well-formed cursor."""
    for name, value in headers:
        if name == CURSOR_HEADER.encode() and value is not None:
            try:
                position, parked_id = (int(part) for part in value.decode("ascii").split(" "))
            except (UnicodeDecodeError, ValueError):
                return None
            return (position, parked_id) if position >= 0 and parked_id >= 0 else None
    return None


async def answered_through(settings: Settings, timeout: float = 30.0) -> tuple[int, int]:
    """The highest (position, parked id) among the last committed answers of each partition; (0, 0) if none.

    Read committed (raw fetches, as `audit verify` reads ledger.heads): records of aborted
    transactions and transaction markers are skipped. A record with no cursor header (only the
    ledger may write this topic) is skipped with a warning and the search goes further back.
    """
    topic = settings.decisions_topic
    tps = await partitions_of(settings, [topic], "ledger")
    if not tps:
        return 0, 0
    consumer = AIOKafkaConsumer(**client_options(settings, "ledger"), isolation_level="read_committed")
    await started(consumer)
    try:
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        deadline = time.monotonic() + timeout
        found = [await _last_cursor(consumer, tp, starts[tp], ends[tp], deadline) for tp in tps]
    finally:
        await consumer.stop()
    cursors = [c for c in found if c is not None]
    if not cursors and any(start > 0 for start in starts.values()):
        # Answers were deleted or expired (the topic is created never to expire them): starting over
        # would answer every submission again. An operator decides (e.g. a new topic, announced).
        raise CursorUnreadable(f"{topic} no longer holds any answer but did: where the answers stopped is unknown")
    return (max(c[0] for c in cursors), max(c[1] for c in cursors)) if cursors else (0, 0)


async def _last_cursor(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int, deadline: float
) -> tuple[int, int] | None:
    """The cursor of the partition's last committed answer, reading back from its end in growing windows."""
    window = 16  # a transaction's commit marker takes an offset after each transaction's records
    upper = end
    while upper > start:
        lower = max(start, upper - window)
        records = await _read(consumer, tp, lower, upper, deadline)
        for record in reversed(records):
            cursor = read_cursor(record.headers)
            if cursor is not None:
                return cursor
            log.warning(
                "%s/%d offset %d carries no answers cursor: skipped",
                tp.topic,
                tp.partition,
                record.offset,
                extra={"topic": tp.topic, "partition": tp.partition, "offset": record.offset},
            )
        upper, window = lower, window * 8
    return None


async def _read(
    consumer: AIOKafkaConsumer, tp: TopicPartition, lower: int, upper: int, deadline: float
) -> list[kafka_raw.RawRecord]:
    """The messages (no markers, nothing aborted) at offsets [lower, upper)."""
    records: list[kafka_raw.RawRecord] = []
    offset = lower
    while offset < upper:
        if time.monotonic() > deadline:
            raise CursorUnreadable(f"reading {tp.topic}/{tp.partition} back took too long")
        raw, aborted = await kafka_raw.fetch(consumer._client, tp, offset)
        batch = [r for r in kafka_raw.parse(raw, aborted) if offset <= r.offset < upper]
        if not batch:
            offset += 1  # bytes that frame no record: step over them
            continue
        records += [r for r in batch if not r.control and r.problem is None]
        offset = batch[-1].offset + 1
    return records

"""The ledger service: a FastStream app appending every Kafka submission to the PostgreSQL log.

One PostgreSQL transaction per Kafka batch holds the appended rows, the parked messages and the
consumed offsets. Offsets live in PostgreSQL, not Kafka: on every partition assignment the consumer
seeks to them, so a crash or rebalance never loses or doubles a submission.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence

import asyncpg
from aiokafka import ConsumerRebalanceListener, TopicPartition
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from events import decode
from projections.judge import Judge
from services import ingest
from services.config import Settings
from services.postgres import log_store
from services.postgres.connect import LEDGER_ROLE, create_pool

log = logging.getLogger("vote_ledger.ledger")


class Ledger:
    """Decides and appends batches; keeps the meeting state its decisions need."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.judge = Judge()
        self.appended = 0
        self.parked = 0

    async def start(self) -> None:
        """Open the pool and rebuild the judge's state from the log."""
        self.pool = await create_pool(self.settings.pg_dsn, LEDGER_ROLE, size=2)
        await self.reload()

    async def stop(self) -> None:
        """Close the pool."""
        if self.pool is not None:
            await self.pool.close()

    async def reload(self) -> None:
        """Rebuild meeting state from accepted admin events, e.g. after a failed transaction."""
        judge = Judge()
        async with self.pool.acquire() as conn:
            for payload in await log_store.admin_payloads(conn):
                judge.apply_accepted(decode(payload))
        self.judge = judge

    async def stored_offsets(self, partitions: Sequence[TopicPartition]) -> dict[tuple[str, int], int]:
        """Next offsets stored in PostgreSQL for these partitions."""
        async with self.pool.acquire() as conn:
            return await log_store.load_offsets(
                conn, self.settings.consumer_group, [(tp.topic, tp.partition) for tp in partitions])

    async def handle(self, records: Sequence[ingest.Record], broker: KafkaBroker) -> ingest.Decided:
        """Decide a batch and commit rows, parked messages and offsets in one transaction."""
        decoded, parked = ingest.decode_batch(records)
        async with self.pool.acquire() as conn, conn.transaction():
            await log_store.lock_log(conn)
            known = await log_store.known_event_ids(conn, [event.event_id for _, event in decoded])
            decided = ingest.decide(self.judge, decoded, known, self.settings.admin_topic)
            decided.parked = parked
            await log_store.append(conn, decided.rows)
            await log_store.park(conn, parked)
            await log_store.store_offsets(conn, self.settings.consumer_group, ingest.next_offsets(records))
            for message in parked:
                # Published before commit: a crash in between re-parks it (at least once on the
                # topic), while the table, keyed by source offset, records it exactly once.
                await broker.publish(
                    message.value or b"", topic=self.settings.parked_topic, key=message.key,
                    headers={"reason": message.reason, "detail": message.detail[:500],
                             "source": f"{message.source_topic}/{message.source_partition}/{message.source_offset}"},
                )
        self.appended += len(decided.rows)
        self.parked += len(parked)
        for message in parked:
            log.warning("parked %s/%s/%s: %s (%s)", message.source_topic, message.source_partition,
                        message.source_offset, message.reason, message.detail)
        return decided


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """On every assignment, resume each partition at the offset committed in PostgreSQL."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.subscriber = None  # set once the subscriber exists; it owns the consumer

    async def on_partitions_revoked(self, revoked) -> None:
        """Nothing to flush: every batch commits before the next poll."""

    async def on_partitions_assigned(self, assigned) -> None:
        """Seek assigned partitions to the stored offsets (or the beginning if none stored)."""
        await seek_to_stored(self.subscriber.consumer, self.ledger, list(assigned))


async def seek_to_stored(consumer, ledger: Ledger, partitions: list[TopicPartition]) -> None:
    """Position the consumer on PostgreSQL's offsets; partitions never consumed start at 0."""
    stored = await ledger.stored_offsets(partitions)
    fresh = []
    for tp in partitions:
        offset = stored.get((tp.topic, tp.partition))
        if offset is None:
            fresh.append(tp)
        else:
            consumer.seek(tp, offset)
    if fresh:
        result = consumer.seek_to_beginning(*fresh)
        if inspect.isawaitable(result):
            await result


async def _rewind(subscriber, ledger: Ledger, records: Sequence[ingest.Record]) -> None:
    """Undo the consumer's advance past an uncommitted batch, retrying until PostgreSQL answers."""
    partitions = sorted({TopicPartition(r.topic, r.partition) for r in records})
    delay = 0.5
    while True:
        try:
            await ledger.reload()  # the judge may have applied admin events that never committed
            await seek_to_stored(subscriber.consumer, ledger, partitions)
            return
        except Exception:  # noqa: BLE001
            log.exception("PostgreSQL unavailable; retrying in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _raw_bodies(message) -> list:
    """Skip FastStream's JSON decoding: the ledger decodes (and parks) each record itself."""
    return message.body


def build_app(settings: Settings) -> tuple[FastStream, Ledger]:
    """Wire the ledger: broker, batch subscriber on both topics, rebalance listener, lifecycle."""
    broker = KafkaBroker(settings.kafka_bootstrap, client_id="vote-ledger-ledger")
    ledger = Ledger(settings)
    listener = SeekToStoredOffsets(ledger)
    subscriber = broker.subscriber(
        settings.submissions_topic, settings.admin_topic,
        batch=True, group_id=settings.consumer_group, auto_offset_reset="earliest",
        max_records=settings.batch_max, batch_timeout_ms=50, max_partition_fetch_bytes=8 << 20,
        listener=listener, ack_policy=AckPolicy.MANUAL, decoder=_raw_bodies,
    )
    listener.subscriber = subscriber

    @subscriber
    async def on_batch(message: KafkaMessage) -> None:
        """Append one batch; on failure rewind to the committed offsets and retry later."""
        records = message.raw_message
        try:
            await ledger.handle(records, broker)
        except Exception:  # noqa: BLE001 - whatever failed, the batch must not be skipped
            log.exception("batch of %d not committed; rewinding to the stored offsets", len(records))
            await _rewind(subscriber, ledger, records)
            return
        # Kafka's own commit is informational (lag dashboards); PostgreSQL holds the truth.
        await message.ack()

    app = FastStream(broker)
    app.on_startup(ledger.start)
    app.after_shutdown(ledger.stop)
    return app, ledger

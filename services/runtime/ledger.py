"""The ledger service: appends every Kafka submission to the PostgreSQL log (wired in ledger_app.py).

One PostgreSQL transaction per Kafka batch holds the appended rows, the parked messages and the
consumed offsets. Offsets live in PostgreSQL, not Kafka: on every partition assignment the consumer
seeks to them, so a crash or rebalance never loses or doubles a submission.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg
from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker

from events import LEDGER_EVENTS, MeetingScheduled, decode_logged
from projections.judge import Judge
from projections.refusals import RefusalFold
from services.adapters.postgres.connect import LEDGER_ROLE, pool_as
from services.adapters.postgres.log import admin as log_admin
from services.adapters.postgres.log import append as log_append
from services.adapters.postgres.log import refusals as log_refusals
from services.observability import logs, metrics, readiness
from services.runtime import ingest
from services.runtime.failures import JudgeRaised, is_transient
from services.settings import Settings

log = logging.getLogger("vote_ledger.ledger")


class Ledger:
    """Decides and appends batches; keeps the meeting state its decisions need."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.judge = Judge(proxy_books=False)  # no decision reads who holds a proxy (R13 is the book's)
        self.judge_position = 0  # log position up to which the judge has applied admin events
        # R17 `reject` made visible (R19): the accepted rows of `reject` meetings folded as the projector
        # folds them, and the log position up to which it holds them (rebuilt with the judge).
        self.refusals = RefusalFold()
        self.refusals_position = 0
        self.broker: KafkaBroker | None = None  # set by build_app: parked copies are published with it
        self.subscriber = None  # set by build_app: /readyz and /metrics read its consumer's lag
        self.backlog = readiness.Backlog()  # the oldest unconsumed record's age, sampled after each batch: /readyz
        # One batch at a time per process: the stall watch (services/runtime/stall_watch.py) commits records
        # too, and the judge is shared state that a batch mutates between awaits.
        self._busy = asyncio.Lock()
        # One seek at a time: the rebalance listener and a rewind may both find offsets lost in Kafka,
        # and the second must read the offset the first stored, or it parks the loss again from the
        # first's halfway point (seen in test_poison: "offsets 1..3" then "offsets 2..3").
        self.seeking = asyncio.Lock()
        self._losing = asyncio.Lock()  # one loss in Kafka recorded at a time (note_lost)
        # The judge may hold admin events of a transaction that did not commit, or half an event it
        # raised on: rebuilt from the log before the next batch is judged.
        self._dirty = False

    async def start(self) -> None:
        """Open the pool and rebuild the judge's state from the log."""
        self.pool = await pool_as(self.settings, LEDGER_ROLE, size=2)
        metrics.watch_pool(metrics.LEDGER_POOL, self.pool)
        await self.reload()

    async def stop(self) -> None:
        """Close the pool."""
        if self.pool is not None:
            await self.pool.close()

    async def reload(self) -> None:
        """Rebuild meeting state from accepted admin events, e.g. after a failed transaction."""
        async with self._busy:
            await self._reload()

    async def _reload(self) -> None:
        self.judge, self.judge_position = Judge(proxy_books=False), 0
        self.refusals, self.refusals_position = RefusalFold(), 0
        async with self.pool.acquire() as conn:
            await self._sync_judge(conn)

    async def _sync_judge(self, conn: asyncpg.Connection) -> None:
        """Apply admin events other ledger processes appended since we last looked."""
        rebuilt = await log_admin.load_judge(conn, self.judge, after=self.judge_position)
        if rebuilt.applied:
            self.judge_position = rebuilt.applied[-1][0]
        # The refusal fold reads back what other ledger processes appended to its meetings, and the
        # meetings they scheduled under `reject`: with none, no query (prorate meetings cost nothing).
        meetings = set(self.refusals.meetings())
        meetings.update(
            e.meeting_id
            for _, e in rebuilt.applied
            if isinstance(e, MeetingScheduled) and e.overvote_policy == "reject"
        )
        if meetings:
            rows = await log_refusals.folded_rows(conn, sorted(meetings), self.refusals_position)
            for row in rows:
                # Rows already logged, and the ledger rows logged after them (by whichever ledger appended
                # them): those, withdrawals included, are what is in force, not what this fold would say.
                event = decode_logged(row["payload"])
                if isinstance(event, LEDGER_EVENTS):
                    self.refusals.note(event)
                else:
                    self.refusals.apply(event, commit=False)
            if rows:
                self.refusals_position = rows[-1]["position"]

    async def note_lost(self, tp: TopicPartition, first: int, start: int) -> None:
        """Park a record of offsets first..start-1, deleted or expired in Kafka before they were logged.

        Nothing can bring them back; the parked row (keyed by its first offset, so recorded once)
        keeps the loss in the log's evidence, in `status` and in the rejection report for good.
        """
        # The seek (under `seeking`) and the stall watch may find the same loss at once: one at a time, from
        # the offset stored now, or the second parks it again from the first's halfway point (seen under a
        # load average of 12: "offsets 1..3" by the seek, then "offsets 2..3" by the stall watch).
        async with self._losing:
            first = (await self.stored_offsets([tp])).get((tp.topic, tp.partition), first)
            if first >= start:
                return  # recorded by the other finder
            detail = f"offsets {first}..{start - 1} were deleted or expired in Kafka before the ledger logged them"
            with logs.bind(topic=tp.topic, partition=tp.partition, offset=first):
                log.error("%s/%d: %s", tp.topic, tp.partition, detail)
            lost = ingest.Consumed(tp.topic, tp.partition, first, None, None, (LOST_IN_KAFKA, detail))
            await self.commit([lost], self.broker)
            await self.skip_to(tp, start)

    async def skip_to(self, tp: TopicPartition, offset: int) -> None:
        """Store a partition's next offset past records that carry no message (transaction markers)."""
        async with self._busy, self.pool.acquire() as conn, conn.transaction():
            await log_append.store_offsets(conn, self.settings.consumer_group, {(tp.topic, tp.partition): offset})

    async def stored_offsets(self, partitions: Sequence[TopicPartition]) -> dict[tuple[str, int], int]:
        """Next offsets stored in PostgreSQL for these partitions."""
        async with self.pool.acquire() as conn:
            return await log_append.load_offsets(
                conn, self.settings.consumer_group, [(tp.topic, tp.partition) for tp in partitions]
            )

    async def handle(
        self, records: Sequence[ingest.Record], broker: KafkaBroker, admin_end: dict[tuple[str, int], int] | None = None
    ) -> ingest.Decided:
        """Decide a batch and commit rows, parked messages and offsets in one transaction.

        ``admin_end`` is the admin topic's end offsets: while meeting administration published
        before these submissions is not yet in the log, the submissions are deferred (returned in
        ``deferred``, not committed) so no vote is judged against a meeting state it predates.
        """
        async with self._busy:
            return await self._handle(records, broker, admin_end)

    async def _handle(
        self, records: Sequence[ingest.Record], broker: KafkaBroker, admin_end: dict[tuple[str, int], int] | None
    ) -> ingest.Decided:
        if self._dirty:
            await self._reload()
            self._dirty = False
        try:
            return await self._decide_and_commit(records, broker, admin_end)
        except BaseException:
            # decide() applied this batch's admin events to the judge (and its rows to the refusal fold)
            # before the commit failed: the next batch, whoever commits it (the stall watch may be
            # waiting), rebuilds them first.
            self._dirty = True
            raise

    async def _decide_and_commit(
        self, records: Sequence[ingest.Record], broker: KafkaBroker, admin_end: dict[tuple[str, int], int] | None
    ) -> ingest.Decided:
        # In slices, yielding to the event loop between them: a big signed batch decoded and judged in
        # one go held the loop past the consumer's session timeout (ingest.SLICE).
        decoded, parked = await ingest.decode_in_slices(records)
        async with self.pool.acquire() as conn, conn.transaction():
            await log_append.lock_log(conn)
            await self._sync_judge(conn)  # under the lock: no other ledger appends meanwhile
            deferred: list[ingest.Record] = []
            if admin_end and not await self._admin_caught_up(conn, records, admin_end):
                deferred = [r for r in records if r.topic != self.settings.admin_topic]
                decoded = [(r, e) for r, e in decoded if r.topic == self.settings.admin_topic]
                parked = [p for p in parked if p.source_topic == self.settings.admin_topic]
            done = [r for r in records if r.topic == self.settings.admin_topic] if deferred else records
            known = await log_append.known_event_ids(conn, [event.event_id for _, event in decoded])
            decided = await ingest.decide_in_slices(
                self.judge, decoded, known, self.settings.admin_topic, refusals=self.refusals
            )
            if decided.judge_suspect and len(records) > 1:
                # The judge raised part-way through an event: later decisions of this batch may rest
                # on half of it. Roll back; one by one, only the record that raises is parked.
                raise JudgeRaised()
            decided.parked, decided.deferred = parked + decided.parked, deferred
            parked = decided.parked
            head = await log_append.append(conn, decided.rows)
            await log_append.park(conn, parked)
            await log_append.store_offsets(conn, self.settings.consumer_group, ingest.next_offsets(done))
            # Published before commit: a crash in between re-parks it (at least once on the topic),
            # while the table, keyed by source offset, records it exactly once. All at once: one
            # broker round trip per batch, not per message, when a flood of garbage arrives.
            await asyncio.gather(
                *(
                    broker.publish(
                        message.value[:PARKED_COPY_MAX] if message.value else b"",
                        topic=self.settings.parked_topic,
                        key=message.key[:PARKED_KEY_MAX] if message.key else message.key,
                        headers=parked_headers(message),
                    )
                    for message in parked
                )
            )
        metrics.record_logged(decided.rows, parked, head)  # committed: counted once, even across a retried batch
        self.judge_position = head  # our own admin events are in the judge already
        self.refusals_position = head  # and our own rows in the refusal fold (under the lock: none of others' between)
        self._dirty = decided.judge_suspect  # the judge raised part-way through an event
        for message in parked:
            # Bound per parked message only, the path that logs it: its coordinates, and its event and meeting
            # ids when it decodes at all (leniently: a NUL or a judge's failure parks a well-formed event).
            event = ingest.decoded_or_none(message.value)
            with logs.bind(
                topic=message.source_topic,
                partition=message.source_partition,
                offset=message.source_offset,
                meeting_id=getattr(event, "meeting_id", None),
                event_id=getattr(event, "event_id", None),
            ):
                log.warning(
                    "parked %s/%s/%s: %s (%s)",
                    message.source_topic,
                    message.source_partition,
                    message.source_offset,
                    message.reason,
                    message.detail,
                )
        return decided

    async def _admin_caught_up(
        self, conn: asyncpg.Connection, records: Sequence[ingest.Record], admin_end: dict[tuple[str, int], int]
    ) -> bool:
        """Whether the log (plus this batch) holds every admin message published so far."""
        stored = await log_append.load_offsets(conn, self.settings.consumer_group, admin_end)
        in_batch = ingest.next_offsets([r for r in records if r.topic == self.settings.admin_topic])
        return all(max(stored.get(tp, 0), in_batch.get(tp, 0)) >= end for tp, end in admin_end.items())

    async def commit(
        self, records: Sequence[ingest.Record], broker: KafkaBroker, admin_end: dict[tuple[str, int], int] | None = None
    ) -> list[ingest.Record]:
        """Commit a batch; if it fails for a record's sake, commit record by record. Returns the deferred.

        A failure that is not a record's fault (see ``is_transient``) propagates: the caller rewinds
        and retries with back-off, so nothing is parked because the database was down.
        """
        try:
            return (await self.handle(records, broker, admin_end)).deferred
        except Exception as exc:  # noqa: BLE001 - classified: the environment's, or a record's
            if is_transient(exc):
                raise
            log.warning(
                "batch of %d not committed (%s: %s); committing one by one", len(records), type(exc).__name__, exc
            )
            return await self._one_by_one(records, broker, admin_end)

    async def _one_by_one(
        self, records: Sequence[ingest.Record], broker: KafkaBroker, admin_end: dict[tuple[str, int], int] | None
    ) -> list[ingest.Record]:
        deferred: list[ingest.Record] = []
        held: set[tuple[str, int]] = set()  # partitions with a deferred record: the rest of them waits too
        for record in records:
            if (record.topic, record.partition) in held:
                deferred.append(record)  # committing it would store an offset past the deferred one
                continue
            try:
                waiting = (await self.handle([record], broker, admin_end)).deferred
            except Exception as exc:  # noqa: BLE001 - classified below
                if is_transient(exc):
                    raise
                reason = "refused_by_database" if isinstance(exc, asyncpg.PostgresError) else ingest.UNPROCESSABLE
                with logs.bind(**ingest.record_context(record, ingest.decoded_or_none(record.value))):
                    log.error(
                        "%s/%s/%s cannot be committed (%s: %s); parking it as %s",
                        record.topic,
                        record.partition,
                        record.offset,
                        type(exc).__name__,
                        exc,
                        reason,
                    )
                    refused = ingest.Consumed(
                        record.topic,
                        record.partition,
                        record.offset,
                        record.key,
                        record.value,
                        (reason, f"{type(exc).__name__}: {exc}"),
                    )
                    waiting = (await self.handle([refused], broker, admin_end)).deferred
            deferred += waiting
            held.update((r.topic, r.partition) for r in waiting)
        return deferred


LOST_IN_KAFKA = "lost_in_kafka"  # parked reason: offsets deleted or expired in Kafka before they were logged

# Kafka refuses a message over its size limit (1 MiB by default, key and headers included); the
# table keeps the whole key and value, the topic a prefix of each, with the original length in a header.
PARKED_COPY_MAX = 900_000
PARKED_KEY_MAX = 60_000


def parked_headers(message) -> dict[str, str]:
    """Headers of a parked message's copy on the parked topic."""
    headers = {
        "reason": message.reason,
        "detail": message.detail[:500],
        "source": f"{message.source_topic}/{message.source_partition}/{message.source_offset}",
    }
    if message.value and len(message.value) > PARKED_COPY_MAX:
        headers["truncated_from"] = str(len(message.value))
    if message.key and len(message.key) > PARKED_KEY_MAX:
        headers["key_truncated_from"] = str(len(message.key))
    return headers

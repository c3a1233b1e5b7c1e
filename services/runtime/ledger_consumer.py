"""The ledger's Kafka consumer glue: positions from PostgreSQL, rewinds, and FastStream hooks.

Offsets live in PostgreSQL, committed with the rows: every assignment and every rewind seeks the
consumer to them, so a crash, rebalance or failed batch never loses or doubles a submission.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from aiokafka import ConsumerRebalanceListener, TopicPartition

from services.runtime import ingest
from services.runtime.retry import retry

log = logging.getLogger("vote_ledger.ledger")

T = TypeVar("T")


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """On every assignment, resume each partition at the offset committed in PostgreSQL."""

    def __init__(self, ledger) -> None:
        self.ledger = ledger
        self.subscriber = None  # set once the subscriber exists; it owns the consumer

    async def on_partitions_revoked(self, revoked) -> None:
        """Nothing to flush: every batch commits before the next poll."""

    async def on_partitions_assigned(self, assigned) -> None:
        """Seek assigned partitions to the stored offsets (or the beginning if none stored)."""
        # aiokafka logs and swallows a listener's exception, and would then resume from Kafka's
        # own commits: wait for PostgreSQL instead, whatever it takes.
        await retry(
            lambda: seek_to_stored(self.subscriber.consumer, self.ledger, list(assigned)),
            log=log,
            what="cannot read stored offsets",
        )


async def seek_to_stored(consumer, ledger, partitions: list[TopicPartition]) -> None:
    """Position the consumer on PostgreSQL's offsets; partitions never consumed start at 0."""
    async with ledger.seeking:
        await _seek_to_stored(consumer, ledger, partitions)


async def _seek_to_stored(consumer, ledger, partitions: list[TopicPartition]) -> None:
    assigned = consumer.assignment()
    partitions = [tp for tp in partitions if tp in assigned]  # a revoked one is its new owner's
    stored = await ledger.stored_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions) if partitions else {}
    ends = await consumer.end_offsets(partitions) if partitions else {}
    # A rebalance may have revoked some while we awaited (two ledgers, tests/faults/test_rebalance.py): seeking
    # one raised IllegalStateError, an ERROR with its traceback and a retry each time.
    assigned = consumer.assignment()
    fresh = []
    for tp in (tp for tp in partitions if tp in assigned):
        offset = stored.get((tp.topic, tp.partition))
        if offset is None:
            fresh.append(tp)
            continue
        if offset > ends[tp]:
            # Never by our writes (offsets only move to records read): the topic was deleted and
            # made again, or the offsets table was changed. Reading on would skip records: stop it.
            log.error(
                "%s/%d: committed offset %d is beyond the partition's end %d: the topic was recreated or"
                " ledger_offsets changed by hand; this partition is paused until an operator fixes it",
                tp.topic,
                tp.partition,
                offset,
                ends[tp],
                extra={"topic": tp.topic, "partition": tp.partition, "offset": offset},
            )
            consumer.pause(tp)
            continue
        if offset < starts[tp]:
            # Records deleted or expired in Kafka before we logged them: recorded for good, then on.
            await ledger.note_lost(tp, offset, starts[tp])
            offset = starts[tp]
        consumer.seek(tp, offset)
    if fresh:
        result = consumer.seek_to_beginning(*fresh)
        if inspect.isawaitable(result):
            await result


async def rewind(consumer, ledger, partitions: Sequence[TopicPartition]) -> None:
    """Seek partitions back to their committed offsets (past an uncommitted batch, or records lost
    from view), retrying until PostgreSQL and the broker answer. The judge rebuilds itself (Ledger)."""
    # Retried whatever the error is, and said so each time.
    await retry(
        lambda: seek_to_stored(consumer, ledger, sorted(partitions)),
        log=log,
        what="cannot seek to the committed offsets",
    )


class Halt:
    """Once a batch cannot go on, no later batch commits: each is rewound and held until the app stops.

    A batch that gave up used to sleep 5 s and return, neither acked nor rewound: the consumer's position
    was past it, so if the consumer was not stopped within those 5 s the next batch committed higher
    offsets to PostgreSQL and the skipped one was never logged.
    """

    def __init__(self) -> None:
        self.reason: str | None = None  # the first batch's reason to give up; None while batches commit
        self.stopping = asyncio.Event()  # set by the app's on_shutdown: the held batches may return

    @property
    def halted(self) -> bool:
        """Whether a batch gave up: no batch may commit from now on."""
        return self.reason is not None

    def give_up(self, reason: str) -> None:
        """Remember that the batches cannot go on (the caller asks the process to exit: failures.give_up)."""
        if self.reason is None:
            self.reason = reason

    async def hold(self, rewind_: Callable[[], Awaitable[None]]) -> None:
        """Rewind to the stored offsets (best effort, errors suppressed), then wait until the app stops."""

        async def rewind_quietly() -> None:
            # Whatever it raises (the cause of giving up may be what it needs): the batch is held anyway.
            with contextlib.suppress(Exception):
                await rewind_()

        rewinding = asyncio.create_task(rewind_quietly(), name="rewind-after-giving-up")
        try:
            await self.stopping.wait()
        finally:
            rewinding.cancel()  # PostgreSQL down: rewind() retries forever; stopping ends it
            await asyncio.gather(rewinding, return_exceptions=True)

    async def stop(self) -> None:
        """The app is stopping: held batches return (before FastStream waits out its graceful timeout)."""
        self.stopping.set()


async def seek_back(consumer, records: Sequence[ingest.Record]) -> None:
    """Rewind each partition of these uncommitted records to its first one, to read them again."""
    first: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        first[tp] = min(first.get(tp, r.offset), r.offset)
    assigned = consumer.assignment()
    for tp, offset in first.items():
        if tp in assigned:
            consumer.seek(tp, offset)


async def tolerant_parser(records, original):
    """FastStream's batch parser, but a header it cannot decode never loses the batch.

    Its parser decodes every header as UTF-8 before our handler runs; one bad header would drop
    the whole batch. The ledger does not use headers, so on failure they are dropped instead.
    """
    try:
        return await original(records)
    except (UnicodeDecodeError, AttributeError):
        return await original(tuple(dataclasses.replace(r, headers=[]) for r in records))


async def raw_bodies(message) -> list:
    """Skip FastStream's JSON decoding: the ledger decodes (and parks) each record itself."""
    return message.body


async def in_fresh_context(work: Coroutine[Any, Any, T]) -> T:
    """Run a batch's work as a task of its own in an empty context, so nothing that outlives it holds the batch.

    FastStream keeps the message being handled in a context variable, and asyncio copies the current context
    into every timer and task made meanwhile. asyncpg's statement cache sets a 300 s expiry timer per prepared
    statement, and a cancelled timeout stays in the loop's heap, context included, until it would have fired:
    each held a 20,000-record batch (its records and raw values) alive long after its commit. In a 100,000
    signed-submission ingest 36,000-78,000 ConsumerRecords were alive at a time, 2-4 batches where one is in
    hand (gc referrers: Context <- TimerHandle of _StatementCache._on_entry_expired, and cancelled ones).
    Cancelling the caller cancels the task too (awaiting a task propagates the cancellation).
    """
    return await asyncio.create_task(work, context=contextvars.Context())

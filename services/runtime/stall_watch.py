"""The stall watch: finds records the Kafka client cannot parse, parks them and moves the ledger on.

Some records the broker accepts cannot be read by aiokafka at all: a header key that is not UTF-8
makes its record parser raise inside ``getmany``, before any code of ours sees the record. The
partition's consumer position then never moves past it, while its end moves on. Mechanism:

1. The ledger's consumer is shielded (``shield_getmany``): such an exception no longer kills the
   consume loop, so every other partition keeps flowing.
2. Every ``check_s`` this watch compares, per assigned partition, the offset committed in
   PostgreSQL with the partition's end. A partition whose committed offset has not moved for
   ``stall_after_s`` while records wait is *stalled*: logged at ERROR and counted.
3. A paused partition, or a stalled one, is then read raw and parsed leniently from its committed
   offset (services/adapters/kafka/raw.py: aiokafka, once it raised on a record, cannot read any later
   record of the same producer batch either). Its readable records are committed as usual; the
   unreadable ones are parked as ``unreadable_record`` with whatever key and value could be read,
   in the same transaction as their offsets; then the ledger's consumer resumes after them. A
   stalled partition with nothing unreadable (PostgreSQL down, votes waiting for meeting
   administration) is only reported. A stalled partition whose commits wait for the synchronous
   standby (it is down) is reported as such and not probed: its commits would wait too.

The watch also alarms when a committed offset is below the partition's log start: records were
deleted or expired in Kafka before the ledger logged them, and nothing can bring them back.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CorruptRecordException, NoOffsetForPartitionError, OffsetOutOfRangeError

from services.adapters.kafka import raw as kafka_raw
from services.adapters.kafka.topics import client_options
from services.adapters.postgres import standby
from services.runtime import failures
from services.runtime.ingest import Consumed
from services.runtime.tasks import cancel_and_wait
from services.settings import Settings

log = logging.getLogger("vote_ledger.stall_watch")

UNREADABLE = "unreadable_record"
SYNC_CHECK_TIMEOUT_S = 2.0  # asking PostgreSQL whether commits wait for the synchronous standby


def is_parse_error(exc: BaseException) -> bool:
    """Whether the Kafka client failed on a record's bytes, not on the network, the broker or itself.

    What aiokafka's record parser raises on bytes it cannot read: UnicodeDecodeError (a header key),
    ValueError/IndexError/struct.error (a record cut short), CorruptRecordException (a CRC). A codec
    it lacks is not the record's fault: UnsupportedCodecError is a KafkaError, so it is excluded.
    """
    return isinstance(exc, (ValueError, IndexError, struct.error, CorruptRecordException))


def shield_getmany(consumer: AIOKafkaConsumer, watch: StallWatch) -> None:
    """Make the consumer's getmany survive a record its parser raises on; hand its partition to the watch.

    Left alone, FastStream's consume loop dies on such an exception and its supervisor restarts it,
    to die again on the same record; and records of other partitions drained in the same call are
    lost from view (their positions moved on). So the failing partition is paused and handed to the
    watch, and every other partition is rewound to its committed offset to be read again.
    """
    original = consumer.getmany

    async def getmany(*partitions, timeout_ms: int = 0, max_records: int | None = None):
        try:
            return await original(*partitions, timeout_ms=timeout_ms, max_records=max_records)
        except (OffsetOutOfRangeError, NoOffsetForPartitionError):
            # Records deleted or expired in Kafka under our position: record the loss, go on from
            # the start (seek_to_stored does both), never silently. No position yet (a partition
            # assigned before our listener sought it): take the stored one. Either way here, not in
            # FastStream's loop, which sleeps 5 s on any Kafka error (measured: first rows 5.2 s late).
            await watch.rewind(consumer.assignment())
            return {}
        except Exception as exc:  # noqa: BLE001 - classified
            if not is_parse_error(exc):
                raise
            failed = _failed_partition(exc)
            assigned = consumer.assignment()
            suspects = {failed} & assigned if failed is not None else set(assigned)
            log.error(
                "the Kafka client cannot parse a record of %s (%s: %s); pausing it for the stall watch",
                ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(suspects)),
                type(exc).__name__,
                exc,
            )
            watch.suspect(suspects)
            consumer.pause(*suspects)
            # Records of other partitions drained in this call are gone from view: read them again.
            # Until that succeeds nothing else may be consumed, or a later commit would skip them.
            await watch.rewind(consumer.assignment())
            return {}

    consumer.getmany = getmany


def _failed_partition(exc: BaseException) -> TopicPartition | None:
    """The partition whose records aiokafka was unpacking when it raised (its traceback names it)."""
    tb = exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("tp")
        if tb.tb_frame.f_code.co_name == "_unpack_records" and isinstance(candidate, TopicPartition):
            return candidate
        tb = tb.tb_next
    return None


@dataclass
class StallWatch:
    """Watches the ledger's partitions; parks what the Kafka client cannot parse (module docstring)."""

    settings: Settings
    ledger: object  # services.runtime.ledger.Ledger (stored_offsets, commit, skip_to)
    subscriber: object  # the FastStream subscriber: its .consumer is the ledger's consumer
    broker: object
    watermark: object  # services.adapters.kafka.topics.AdminWatermark: end offsets of meeting administration
    rewind: Callable[[set[TopicPartition]], Awaitable[None]] | None = None  # to committed offsets, retrying
    behind_log_start: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    _suspects: set[TopicPartition] = field(default_factory=set)
    _nudged: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _since: dict[TopicPartition, tuple[int, float]] = field(default_factory=dict)
    _probe: AIOKafkaConsumer | None = None
    _task: asyncio.Task | None = None

    async def start(self) -> None:
        """Shield the ledger's consumer and start watching."""
        shield_getmany(self.subscriber.consumer, self)
        self._probe = AIOKafkaConsumer(
            **client_options(self.settings, "ledger"),
            enable_auto_commit=False,
            client_id="vote-ledger-stall-watch",
            isolation_level="read_committed",
        )
        await self._probe.start()
        self._task = asyncio.create_task(self._run(), name="stall-watch")

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._probe is not None:
            await self._probe.stop()

    def nudge(self) -> None:
        """Votes wait for meeting administration: look at its partitions now, not after the stall limit."""
        self._nudged = True
        self._wake.set()

    def suspect(self, partitions: set[TopicPartition]) -> None:
        """Partitions paused because the client raised on one of their records: probe them now."""
        self._suspects |= partitions
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.stall_check_s)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.check()
            except Exception as exc:  # noqa: BLE001 - the watch must outlive a broker or database hiccup
                # An outage is said once by its dependency (the ledger's batches say when it is back).
                line = f"stall check failed ({type(exc).__name__}: {exc}); trying again"
                failures.report(exc, "the stall watch", log, line)
                await asyncio.sleep(self.settings.stall_check_s)

    async def check(self) -> None:
        """One round: probe paused suspects; compare committed offsets with ends; probe what is stalled."""
        consumer = self.subscriber.consumer
        assigned = sorted(consumer.assignment())
        self._suspects &= set(assigned)  # a revoked partition is its new owner's business
        self._suspects |= consumer.paused() & set(assigned)  # paused by us, whatever stopped its probe
        if not assigned:
            return
        nudged, self._nudged = self._nudged, False
        stored = await self.ledger.stored_offsets(assigned)
        starts = await self._probe.beginning_offsets(assigned)
        ends = await self._probe.end_offsets(assigned)
        now = time.monotonic()
        for tp in assigned:
            committed = stored.get((tp.topic, tp.partition))
            if committed is not None and committed < starts[tp]:
                self.behind_log_start[(tp.topic, tp.partition)] = (committed, starts[tp])
                await self.ledger.note_lost(tp, committed, starts[tp])  # logged and parked for good
                committed = starts[tp]
                if tp not in self._suspects:
                    consumer.seek(tp, committed)
            if committed is not None and committed > ends[tp]:
                continue  # paused by seek_to_stored, which said why: an operator's to fix
            position = max(committed or 0, starts[tp])
            if tp in self._suspects:
                done = await self.probe(tp, position, ends[tp])
                now_at = (await self.ledger.stored_offsets([tp])).get((tp.topic, tp.partition), position)
                if done and tp in consumer.assignment():  # it may have been revoked meanwhile
                    self._suspects.discard(tp)
                    consumer.seek(tp, now_at)
                    consumer.resume(tp)
                elif now_at > position:
                    self._wake.set()  # it committed a chunk of a long backlog: go on at once
                continue
            if position >= ends[tp]:
                self._since.pop(tp, None)
                continue
            if nudged and tp.topic == self.settings.admin_topic:
                # Commits the waiting admin records itself (the consume loop's copies are then
                # redeliveries), or moves the offset past trailing transaction markers. Not a stall:
                # votes waiting for a meeting, or a burst of amendments among votes (issue 12), do it.
                await self.probe(tp, position, ends[tp], stalled=False)
                continue
            seen, since = self._since.get(tp, (None, now))
            if seen != position:
                self._since[tp] = (position, now)
                continue
            if now - since >= self.settings.stall_after_s:
                waiting = await standby.ledger_commits_wait(self.settings, SYNC_CHECK_TIMEOUT_S)
                if waiting:
                    # Not a parsing problem: probing would only add a commit stuck like the ledger's (it
                    # blocked the watch ~57 s, then said "none is unreadable"). Said once per stall check.
                    log.error(
                        "%s/%d stalled at offset %d for %.0f s with %d records waiting: %s",
                        tp.topic,
                        tp.partition,
                        position,
                        now - since,
                        ends[tp] - position,
                        waiting,
                        extra={"topic": tp.topic, "partition": tp.partition, "offset": position},
                    )
                    self._since[tp] = (position, now)
                    continue
                log.error(
                    "%s/%d stalled at offset %d for %.0f s with %d records waiting; probing it",
                    tp.topic,
                    tp.partition,
                    position,
                    now - since,
                    ends[tp] - position,
                    extra={"topic": tp.topic, "partition": tp.partition, "offset": position},
                )
                self._since[tp] = (position, now)
                if await self.probe(tp, position, ends[tp]) and tp in consumer.assignment():
                    consumer.seek(tp, (await self.ledger.stored_offsets([tp])).get((tp.topic, tp.partition), position))
                    self._since.pop(tp, None)

    async def probe(self, tp: TopicPartition, start: int, end: int, stalled: bool = True) -> bool:
        """Commit the partition's records from ``start`` as read leniently; park the ones a client cannot read.

        Returns whether the ledger's consumer can go on from the committed offset: False while votes
        wait for meeting administration (nothing was committed; the next round tries again).
        ``stalled``: probed because it stalled or raised (an all-readable result is then worth an error),
        not because votes are waiting for the admin records it holds.
        """
        raw, aborted = await kafka_raw.fetch(self._probe._client, tp, start)
        parsed = list(kafka_raw.parse(raw, aborted))
        read = [r for r in parsed if r.offset >= start]
        records = [r for r in read if not r.control]
        if not parsed and raw:
            # Bytes that frame no record at all (the broker validates batches, so this is unlikely):
            # park the offset itself, so the partition moves on one offset per round at worst.
            records = [kafka_raw.RawRecord(start, problem="the fetched bytes frame no record batch")]
        if not records:
            if read:  # only transaction markers: no message to log, but the offset moves past them
                await self.ledger.skip_to(tp, read[-1].offset + 1)
            return True
        batch = [
            Consumed(
                tp.topic,
                tp.partition,
                r.offset,
                r.key,
                r.value,
                None if r.problem is None else (UNREADABLE, r.problem),
                r.timestamp,
                r.timestamp_type,
            )
            for r in records
        ]
        if await self.ledger.commit(batch, self.broker, await self.watermark.end_offsets()):
            return False  # votes wait for meeting administration: the next round tries again
        unreadable = [r for r in records if r.problem is not None]
        for r in unreadable:
            log.error(
                "%s/%d: parked record %d, which the Kafka client cannot read: %s",
                tp.topic,
                tp.partition,
                r.offset,
                r.problem,
                extra={"topic": tp.topic, "partition": tp.partition, "offset": r.offset},
            )
        if not unreadable and stalled:
            log.error(
                "%s/%d: read and committed %d records from %d here; none is unreadable, so the stall was not"
                " a parsing problem",
                tp.topic,
                tp.partition,
                len(records),
                start,
                extra={"topic": tp.topic, "partition": tp.partition, "offset": start},
            )
        return True

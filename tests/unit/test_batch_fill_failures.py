"""BatchFill's failures have no side effects: the batch goes on as it came, from where it ends, and nothing is skipped.

The consumer is aiokafka's own (unstarted: its assignment and positions are real), with a getmany that drains and
then fails the way aiokafka's does; the stall watch's wrapper is installed on it as in the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError, OffsetOutOfRangeError

from services.runtime import batch_fill
from services.runtime.batch_fill import BatchFill
from services.runtime.stall_watch import shield_getmany

A, B = TopicPartition("votes.submissions", 0), TopicPartition("votes.submissions", 1)


def _record(tp: TopicPartition, offset: int) -> ConsumerRecord:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"v", None, 0, 1, ())


class FailingConsumer(AIOKafkaConsumer):
    """aiokafka's consumer whose getmany hands out ``drain`` records per partition (moving its position), then
    raises ``failure``, or never returns with ``hang``; a pending coordinator error is raised and forgotten first,
    as aiokafka's check_errors does."""

    def __init__(self, positions: dict[TopicPartition, int]) -> None:
        super().__init__(bootstrap_servers="127.0.0.1:1")
        self.assign(list(positions))
        for tp, offset in positions.items():
            self._subscription.seek(tp, offset)
        self.drain: dict[TopicPartition, int] = {}
        self.failure: BaseException | None = None
        self.hang = False
        self.calls = 0

    def position_of(self, tp: TopicPartition) -> int:
        """The next offset the consumer hands out."""
        return self._subscription.subscription.assignment.state_value(tp).position

    async def getmany(self, *partitions, timeout_ms=0, max_records=None):
        """Drain, then fail."""
        self.calls += 1
        coordinator = self._coordinator
        if coordinator is not None and coordinator._pending_exception is not None:
            exc, coordinator._pending_exception = coordinator._pending_exception, None
            raise exc
        if self.hang:
            await asyncio.Event().wait()
        drained = {}
        for tp, count in self.drain.items():
            start = self.position_of(tp)
            drained[tp] = [_record(tp, start + i) for i in range(count)]
            self._subscription.subscription.assignment.state_value(tp).consumed_to(start + count)
        if self.failure is not None:
            raise self.failure
        return drained

    def seek(self, partition, offset):
        """As aiokafka's, less the fetcher (not started): the position moves."""
        self._subscription.seek(partition, offset)


class Coordinator:
    """What the fill reads of aiokafka's group coordinator: an error waiting for the consume loop."""

    def __init__(self, pending: BaseException | None) -> None:
        self._pending_exception = pending
        self._coordination_task = None


class Ends:
    """The fill's end-offsets client: the partitions' ends, or no answer at all with ``hang``."""

    def __init__(self, ends: dict[TopicPartition, int], hang: bool = False) -> None:
        self.ends = ends
        self.hang = hang

    async def end_offsets(self, partitions):
        """The ends of ``partitions``."""
        if self.hang:
            await asyncio.Event().wait()
        return {tp: self.ends[tp] for tp in partitions}


class Watch:
    """Records what the stall watch's wrapper would do: rewind everything, or pause a partition for a probe."""

    def __init__(self) -> None:
        self.rewound: list[set[TopicPartition]] = []
        self.suspected: list[set[TopicPartition]] = []

    async def rewind(self, partitions) -> None:
        """Records a rewind (the real one seeks to the stored offsets and parks what was deleted as lost)."""
        self.rewound.append(set(partitions))

    def suspect(self, partitions) -> None:
        """Records a partition handed over for a probe."""
        self.suspected.append(set(partitions))


@pytest.fixture
async def consumer():
    """Partitions A and B, the batch in hand ending at offsets 100 and 50; the stall watch's wrapper installed."""
    consumer = FailingConsumer({A: 100, B: 50})
    watch = Watch()
    shield_getmany(consumer, watch)
    consumer.watch = watch
    yield consumer
    consumer._coordinator = None  # a test's stand-in has nothing to close
    await consumer.stop()


def _filler(ends: Ends) -> BatchFill:
    filler = BatchFill(settings=None)
    filler.client = ends
    return filler


BATCH = [_record(A, 99), _record(B, 49)]


async def test_an_offset_out_of_range_in_the_fill_neither_rewinds_nor_parks_anything_and_the_batch_goes_on(consumer):
    consumer.failure = OffsetOutOfRangeError({A: 100})
    filled = await _filler(Ends({A: 250, B: 50})).fill(consumer, BATCH, room=100)
    assert filled == BATCH
    assert consumer.calls == 1  # the class's getmany was called, not the stall watch's wrapper around it
    assert consumer.watch.rewound == []  # the wrapper would have parked 100..249 as lost while the batch logs 99
    assert consumer.position_of(A) == 100  # the consume loop meets the error again, with the batch committed


async def test_a_parse_error_after_another_partition_was_drained_leaves_both_where_the_batch_ends(consumer, caplog):
    consumer.drain = {A: 30}  # drained and dropped: aiokafka raises for B before it returns them
    consumer.failure = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    with caplog.at_level(logging.DEBUG, logger="vote_ledger.ledger"):
        filled = await _filler(Ends({A: 200, B: 80})).fill(consumer, BATCH, room=100)
    assert filled == BATCH
    assert (consumer.position_of(A), consumer.position_of(B)) == (100, 50)  # offsets 100-129 are read again
    assert consumer.paused() == set() and consumer.watch.suspected == [] and consumer.watch.rewound == []
    [line] = [r for r in caplog.records if "not filled" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert "UnicodeDecodeError" in line.getMessage() and "\n" not in line.getMessage()


async def test_a_coordinator_error_is_left_for_the_consume_loop_not_raised_and_forgotten_in_the_fill(consumer):
    denied = GroupAuthorizationFailedError()
    consumer._coordinator = Coordinator(denied)
    filled = await _filler(Ends({A: 200, B: 80})).fill(consumer, BATCH, room=100)
    assert filled == BATCH
    assert consumer._coordinator._pending_exception is denied  # FastStream's next getmany raises it


async def test_a_fill_whose_fetch_never_returns_gives_up_within_its_bound_with_the_positions_unmoved(consumer):
    consumer.hang = True  # as aiokafka's fetch waiting for a rebalance to end
    started = time.monotonic()
    filled = await _filler(Ends({A: 200, B: 80})).fill(consumer, BATCH, room=100)
    assert time.monotonic() - started < batch_fill.TIMEOUT_S + 0.5
    assert filled == BATCH
    assert (consumer.position_of(A), consumer.position_of(B)) == (100, 50)


async def test_a_fill_whose_end_offsets_never_answer_gives_up_within_its_bound(consumer):
    started = time.monotonic()
    filled = await _filler(Ends({A: 200, B: 80}, hang=True)).fill(consumer, BATCH, room=100)
    assert time.monotonic() - started < batch_fill.TIMEOUT_S + 0.5
    assert filled == BATCH and consumer.calls == 0


async def test_a_fill_that_succeeds_takes_the_drained_records_without_the_stall_watchs_wrapper(consumer):
    consumer.drain = {A: 3}
    filled = await _filler(Ends({A: 200, B: 50})).fill(consumer, BATCH, room=100)
    assert [(r.partition, r.offset) for r in filled] == [(0, 99), (1, 49), (0, 100), (0, 101), (0, 102)]
    assert consumer.position_of(A) == 103

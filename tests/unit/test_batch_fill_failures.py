"""BatchFill's failures have no side effects: the batch goes on as it came, from where it ends, and nothing is skipped.

The consumer is aiokafka's own (unstarted: its getmany, assignment and positions are real) with a fetcher that hands
out records and then fails the way aiokafka's does, and a coordinator holding an error as aiokafka's does; the stall
watch's wrapper is installed on it as in the ledger.
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
BATCH_ENDS = {A: 100, B: 50}


def _record(tp: TopicPartition, offset: int) -> ConsumerRecord:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"v", None, 0, 1, ())


BATCH = [_record(A, 99), _record(B, 49)]


class Fetcher:
    """aiokafka's fetcher as the fill meets it: hands out ``drain`` records per partition (moving its position, as
    aiokafka does before it raises for a later partition), then raises ``failure``; or never returns (``hang``)."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.drain: dict[TopicPartition, int] = {}
        self.failure: BaseException | None = None
        self.hang = False
        self.calls = 0

    async def fetched_records(self, partitions, timeout=0, max_records=None):
        """Drain, then fail."""
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        drained = {}
        for tp, count in self.drain.items():
            state = self.consumer._subscription.subscription.assignment.state_value(tp)
            drained[tp] = [_record(tp, state.position + i) for i in range(count)]
            state.consumed_to(state.position + count)
        if self.failure is not None:
            raise self.failure
        return drained

    def seek_to(self, tp, offset):
        """As aiokafka's (which also drops the partition's fetched response): the position moves."""
        self.consumer.sought.append(tp)
        self.consumer._subscription.seek(tp, offset)


class Coordinator:
    """aiokafka's group coordinator as getmany meets it: an error held for the consumer, raised once, then forgotten."""

    def __init__(self, pending: BaseException | None = None) -> None:
        self.pending = pending

    def check_errors(self) -> None:
        """As aiokafka's GroupCoordinator.check_errors."""
        if self.pending is not None:
            exc, self.pending = self.pending, None
            raise exc


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
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
    consumer.assign(list(BATCH_ENDS))
    for tp, offset in BATCH_ENDS.items():
        consumer._subscription.seek(tp, offset)
    consumer._fetcher = Fetcher(consumer)
    consumer._coordinator = Coordinator()
    consumer.sought = []
    consumer.watch = Watch()
    shield_getmany(consumer, consumer.watch)
    yield consumer
    consumer._fetcher = consumer._coordinator = None  # the stand-ins have nothing to close
    await consumer.stop()


def _position(consumer, tp: TopicPartition) -> int:
    return consumer._subscription.subscription.assignment.state_value(tp).position


def _filler(ends: Ends) -> BatchFill:
    filler = BatchFill(settings=None)
    filler.client = ends
    return filler


async def test_an_offset_out_of_range_in_the_fill_neither_rewinds_nor_parks_anything_and_the_batch_goes_on(consumer):
    consumer._fetcher.failure = OffsetOutOfRangeError({A: 100})
    filled = await _filler(Ends({A: 250, B: 50})).fill(consumer, BATCH, room=100)
    assert filled == BATCH
    assert consumer._fetcher.calls == 1
    assert consumer.watch.rewound == []  # the wrapper parked 100..249 as lost, skipped to 250, while the batch logs 99
    assert _position(consumer, A) == 100  # the consume loop's next poll meets the error, with the batch committed


async def test_a_parse_error_after_another_partition_was_drained_leaves_both_where_the_batch_ends(consumer, caplog):
    consumer._fetcher.drain = {A: 30}  # drained and dropped: aiokafka raises for B before it returns them
    consumer._fetcher.failure = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    with caplog.at_level(logging.DEBUG, logger="vote_ledger.ledger"):
        filled = await _filler(Ends({A: 200, B: 80})).fill(consumer, BATCH, room=100)
    assert filled == BATCH
    assert (_position(consumer, A), _position(consumer, B)) == (100, 50)  # offsets 100-129 are read again
    assert set(consumer.sought) == {A, B}  # B too: its fetched response, raised in the midst of, is fetched anew
    assert consumer.paused() == set() and consumer.watch.suspected == [] and consumer.watch.rewound == []
    [line] = [r for r in caplog.records if "not filled" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert "UnicodeDecodeError" in line.getMessage() and "\n" not in line.getMessage()


async def test_a_coordinator_error_is_left_for_the_consume_loop_not_raised_and_forgotten_in_the_fill(consumer):
    denied = GroupAuthorizationFailedError()
    consumer._coordinator.pending = denied
    consumer._fetcher.drain = {A: 2}
    filled = await _filler(Ends({A: 200, B: 50})).fill(consumer, BATCH, room=100)
    assert len(filled) == 4
    with pytest.raises(GroupAuthorizationFailedError):  # FastStream's next poll raises it
        await consumer.getmany(timeout_ms=0)


async def test_a_fill_whose_fetch_never_returns_gives_up_within_its_bound_with_the_poll_clock_running(consumer):
    consumer._fetcher.hang = True  # as aiokafka's fetch waiting for a rebalance that began during it
    started = time.monotonic()
    filled = await _filler(Ends({A: 200, B: 80})).fill(consumer, BATCH, room=100)
    assert time.monotonic() - started < batch_fill.TIMEOUT_S + 0.5
    assert filled == BATCH
    assert (_position(consumer, A), _position(consumer, B)) == (100, 50)
    assert consumer._subscription.fetcher_idle_time > 0  # max_poll_interval_ms still counts (getmany's would not)


async def test_a_fill_whose_end_offsets_never_answer_gives_up_within_its_bound(consumer):
    started = time.monotonic()
    filled = await _filler(Ends({A: 200, B: 80}, hang=True)).fill(consumer, BATCH, room=100)
    assert time.monotonic() - started < batch_fill.TIMEOUT_S + 0.5
    assert filled == BATCH and consumer._fetcher.calls == 0


async def test_a_fill_that_succeeds_takes_the_drained_records_in_offset_order_after_the_batch(consumer):
    consumer._fetcher.drain = {A: 3}
    filled = await _filler(Ends({A: 200, B: 50})).fill(consumer, BATCH, room=100)
    assert [(r.partition, r.offset) for r in filled] == [(0, 99), (1, 49), (0, 100), (0, 101), (0, 102)]
    assert _position(consumer, A) == 103 and consumer.sought == []

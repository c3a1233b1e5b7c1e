"""BatchFill: records waiting in Kafka right after a batch join it, in order, and nothing else does."""

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError

from services.adapters.kafka.topics import client_options, producer
from services.runtime.batch_fill import BatchFill

pytestmark = pytest.mark.integration


async def _consumer(settings) -> tuple[AIOKafkaConsumer, TopicPartition]:
    consumer = AIOKafkaConsumer(**client_options(settings, "operator"), isolation_level="read_committed")
    await consumer.start()
    tp = TopicPartition(settings.submissions_topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    return consumer, tp


async def _first(consumer, count: int) -> list:
    got: list = []
    while len(got) < count:
        batch = await consumer.getmany(timeout_ms=10_000, max_records=count - len(got))
        got += [r for records in batch.values() for r in records]
    return got


async def test_a_tiny_batch_takes_in_the_records_already_waiting_after_it_in_offset_order(settings):
    values = [f"v{i}".encode() for i in range(10)]
    # All on partition 0, so offsets give the order.
    async with producer(settings) as client:
        await asyncio.gather(*[await client.send(settings.submissions_topic, v, partition=0) for v in values])
    consumer, _ = await _consumer(settings)
    filler = BatchFill(settings)
    await filler.start()
    try:
        batch = await _first(consumer, 3)  # what aiokafka's prefetch hands out alone
        filled = await filler.fill(consumer, batch, room=100)
        assert [r.value for r in filled] == values
        assert [r.offset for r in filled] == list(range(10))
        assert await filler.fill(consumer, filled, room=100) == filled  # nothing waits any more: returned as is
    finally:
        await filler.stop()
        await consumer.stop()


async def test_the_fill_adds_at_most_the_room_left_and_nothing_from_a_paused_partition(settings):
    async with producer(settings) as client:
        await asyncio.gather(*[await client.send(settings.submissions_topic, b"x", partition=0) for _ in range(10)])
    consumer, tp = await _consumer(settings)
    filler = BatchFill(settings)
    await filler.start()
    try:
        batch = await _first(consumer, 2)
        assert len(await filler.fill(consumer, batch, room=3)) == 5
        consumer.pause(tp)  # the stall watch's pause is not the fill's to override
        assert len(await filler.fill(consumer, batch, room=100)) == 2
        assert len(await filler.fill(consumer, batch, room=0)) == 2
    finally:
        await filler.stop()
        await consumer.stop()


async def test_a_coordinator_error_pending_at_the_fill_is_still_raised_by_the_consume_loops_next_poll(settings):
    async with producer(settings) as client:
        await asyncio.gather(*[await client.send(settings.submissions_topic, b"x", partition=0) for _ in range(10)])
    consumer = AIOKafkaConsumer(
        **client_options(settings, "ledger"),
        group_id=settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    consumer.subscribe([settings.submissions_topic])
    filler = BatchFill(settings)
    await filler.start()
    try:
        batch = await _first(consumer, 2)
        # What aiokafka's coordinator keeps for the consumer's next getmany when the group is refused (its
        # _push_error_to_user): raised once, then forgotten.
        consumer._coordinator._pending_exception = GroupAuthorizationFailedError()
        filled = await filler.fill(consumer, batch, room=100)
        assert [r.offset for r in filled] == list(range(10))  # filled all the same: the error is not the fill's
        with pytest.raises(GroupAuthorizationFailedError):
            await consumer.getmany(timeout_ms=0)
    finally:
        await filler.stop()
        await consumer.stop()

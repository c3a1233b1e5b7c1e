"""The ledger on real Kafka and PostgreSQL: decisions recorded, malformed input parked, no doubles."""

import asyncio

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from services.adapters.kafka.topics import client_options, faststream_security, producer, publish, publish_raw
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import running_ledger, wait_for

pytestmark = pytest.mark.integration

COUNT_ROWS = "SELECT count(*) FROM ledger_log"


def admin_events():
    return [small_meeting(), register_event()]


async def test_every_submission_is_appended_with_its_decision_and_reason(settings):
    votes = [
        cast("R-1", {"2": "for"}),
        cast("X-404", {"2": "for"}),
        cast("R-2", {"5": "for"}),
        cast("R-2", {"2": "for"}, channel="mail", signatures=["Carl"]),
    ]
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, admin_events())
        await publish(client, settings, votes)
        await wait_for(settings.pg_dsn, COUNT_ROWS, 6)
    conn = await asyncpg.connect(settings.pg_dsn)
    rows = {r["event_id"]: (r["decision"], r["reason"]) for r in await conn.fetch("SELECT * FROM ledger_log")}
    offsets = await conn.fetch("SELECT topic, sum(next_offset) AS n FROM ledger_offsets GROUP BY topic")
    await conn.close()
    assert [rows[v.event_id] for v in votes] == [
        ("accepted", None),
        ("rejected", "not_entitled"),
        ("rejected", "invalid_choice"),
        ("rejected", "missing_joint_signature"),
    ]
    assert {r["topic"]: r["n"] for r in offsets} == {settings.admin_topic: 2, settings.submissions_topic: 4}


async def test_a_malformed_message_is_parked_reported_and_the_consumer_goes_on(settings):
    good = cast("R-1", {"2": "for"})
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, admin_events())
        await publish_raw(
            client,
            settings.submissions_topic,
            [(b"R-1", b'{"type": "vote.cast", "v": 1'), (b"R-1", b"\x00\xff garbage")],
        )
        await publish(client, settings, [good])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_parked", 2)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log WHERE event_id = $1", 1, good.event_id)
    conn = await asyncpg.connect(settings.pg_dsn)
    parked = await conn.fetch("SELECT reason, value FROM ledger_parked ORDER BY id")
    await conn.close()
    assert [p["reason"] for p in parked] == ["invalid_json", "invalid_utf8"]
    assert parked[1]["value"] == b"\x00\xff garbage"
    consumer = AIOKafkaConsumer(
        settings.parked_topic, **client_options(settings, "operator"), auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000, max_records=10)
    finally:
        await consumer.stop()
    dead = [m for records in batch.values() for m in records]
    assert len(dead) == 2 and dict(dead[0].headers)["reason"] == b"invalid_json"


async def test_redelivered_batches_are_appended_once(settings):
    votes = [cast("R-1", {"2": "for"}, executed=i) for i in range(1, 51)]
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, admin_events() + votes)
        await wait_for(settings.pg_dsn, COUNT_ROWS, 52)
    # Forget the committed offsets, as if a crash had lost them: Kafka redelivers everything.
    conn = await asyncpg.connect(settings.pg_dsn)
    await conn.execute("UPDATE ledger_offsets SET next_offset = 0")
    await conn.close()
    extra = cast("R-2", {"2": "against"})
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [extra])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log WHERE event_id = $1", 1, extra.event_id)
        await wait_for(settings.pg_dsn, "SELECT sum(next_offset) FROM ledger_offsets", 53)
    conn = await asyncpg.connect(settings.pg_dsn)
    total, distinct = await conn.fetchrow("SELECT count(*), count(DISTINCT event_id) FROM ledger_log")
    await conn.close()
    assert total == distinct == 53


async def test_the_same_records_handled_twice_append_once(settings):

    class Rec:
        def __init__(self, offset, event, topic):
            from events import encode

            self.topic, self.partition, self.offset = topic, 0, offset
            self.key, self.value = b"k", encode(event)

    events = admin_events() + [cast("R-1", {"2": "for"}), cast("B-1", {"2": "for"}, channel="broker")]
    records = [Rec(i, e, settings.admin_topic if i < 2 else settings.submissions_topic) for i, e in enumerate(events)]
    async with running_ledger(settings) as ledger:
        from faststream.kafka import KafkaBroker

        broker = KafkaBroker(settings.kafka_bootstrap, security=faststream_security(settings, "ledger"))
        await broker.connect()
        first = await ledger.handle(records, broker)
        again = await ledger.handle(records, broker)
        await broker.stop()
    assert (len(first.rows), first.duplicates) == (4, 0)
    assert (len(again.rows), again.duplicates) == (0, 4)
    await wait_for(settings.pg_dsn, COUNT_ROWS, 4, timeout=5)
    await asyncio.sleep(0)

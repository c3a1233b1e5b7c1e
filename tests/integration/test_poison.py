"""Poison input through the real broker: each kind is parked with its reason and ingestion goes on."""

import asyncio

import asyncpg
import pytest

from events import encode
from services.adapters.kafka.topics import client_options, producer, publish
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import RawHeaderKey, builder_that_sends_raw_header_keys, running_ledger, wait_for

pytestmark = pytest.mark.integration

_CLOSED = b'{"type":"polls.closed","v":1,"event_id":"poison-%s","meeting_id":"m1","closed_at":"2030-01-01T00:00:00Z"'

# Each kind of poison the abuse test found, as (name, message value, headers).
POISONS = {
    "invalid UTF-8 in an unknown field": (_CLOSED + b',"note":"\xff"}', []),
    "invalid UTF-8 in a known field": (_CLOSED.replace(b"poison-%s", b"poison-\xfe%s") + b"}", []),
    "JSON nested a thousand deep": (_CLOSED + b',"note":' + b"[" * 1000 + b"]" * 1000 + b"}", []),
    "JSON nested a hundred thousand deep": (_CLOSED + b',"note":' + b"[" * 100_000 + b"]" * 100_000 + b"}", []),
    "a header value that is not UTF-8": (_CLOSED + b"}", [("trace", b"\xff\xfe")]),
}


async def parked(dsn: str) -> list[asyncpg.Record]:
    """Every parked message, in source order."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT * FROM ledger_parked ORDER BY source_topic, source_partition, source_offset")
    finally:
        await conn.close()


@pytest.mark.parametrize("on_admin_topic", [True, False], ids=["on meetings.admin", "on votes.submissions"])
@pytest.mark.parametrize("kind", sorted(POISONS))
async def test_a_poison_message_is_parked_and_the_votes_after_it_are_all_logged(settings, kind, on_admin_topic):
    value, headers = POISONS[kind]
    value = value.replace(b"%s", b"1")
    topic = settings.admin_topic if on_admin_topic else settings.submissions_topic
    votes = [cast(cn, {"2": "for"}, executed=i) for i in (1, 2, 3) for cn in ("R-1", "R-2", "B-1")]
    async with producer(settings) as client:
        await publish(client, settings, [small_meeting()])
        await (await client.send(topic, value, key=b"R-1", headers=headers))
        await publish(client, settings, [register_event(), *votes])
    logged = "header value" in kind  # a well-formed event with a bad header is logged, not parked
    async with running_ledger(settings):
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2 + len(votes) + logged, timeout=60)
        rows = await parked(settings.pg_dsn)
    if logged:
        assert rows == []
        return
    assert [(r["source_topic"], r["value"]) for r in rows] == [(topic, value)]
    assert rows[0]["reason"] in ("invalid_json", "invalid_utf8")


@pytest.mark.parametrize("on_admin_topic", [True, False], ids=["on meetings.admin", "on votes.submissions"])
async def test_a_record_the_kafka_client_cannot_parse_is_skipped_parked_and_reported(settings, on_admin_topic):
    # A header *key* that is not UTF-8: the broker accepts it, aiokafka's record parser raises on it.
    topic = settings.admin_topic if on_admin_topic else settings.submissions_topic
    votes = [cast(cn, {"2": "for"}, executed=i) for i in (1, 2) for cn in ("R-1", "R-2", "B-1")]
    async with producer(settings) as client:
        await publish(client, settings, [small_meeting()])
        with builder_that_sends_raw_header_keys():
            sent = await (
                await client.send(
                    topic, _CLOSED.replace(b"%s", b"hk") + b"}", key=b"R-1", headers=[(RawHeaderKey("k"), b"x")]
                )
            )
        await publish(client, settings, [register_event(), *votes])
    async with running_ledger(settings):
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2 + len(votes), timeout=90)
        rows = await parked(settings.pg_dsn)
    assert [(r["source_topic"], r["source_offset"], r["reason"]) for r in rows] == [
        (topic, sent.offset, "unreadable_record")
    ]


async def test_an_event_id_squatted_with_other_bytes_is_logged_rejected_and_a_redelivery_dropped(settings):
    from services.read.verify import verify_meeting

    vote = encode(cast("R-1", {"2": "for"}, executed=1, event_id="mine"))
    squat = encode(cast("R-2", {"2": "against"}, executed=2, event_id="mine"))
    async with producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()])
        for value in (vote, squat, vote, squat):  # the first of each is logged; the repeats are redeliveries
            await (await client.send(settings.submissions_topic, value, key=b"R-1"))
        await publish(client, settings, [cast("R-1", {"2": "against"}, executed=3, event_id="after")])
    async with running_ledger(settings):
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log WHERE event_id = 'after'", 1)
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        rows = await conn.fetch(
            "SELECT event_id, control_number, decision, reason FROM ledger_log"
            " WHERE event_id = 'mine' ORDER BY position"
        )
        verification = await verify_meeting(conn, "m1")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        ("mine", "R-1", "accepted", None),
        ("mine", "R-2", "rejected", "duplicate_event_id"),
    ]
    assert verification.misjudged is None and not verification.problems


async def test_records_deleted_in_kafka_before_the_ledger_logged_them_are_alarmed_and_recorded_as_lost(settings):
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    from services.read.status import status

    tp = TopicPartition(settings.submissions_topic, 0)
    async with producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()])
        async with running_ledger(settings):
            await (await client.send(tp.topic, encode(cast("R-1", {"2": "for"})), partition=0))
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 3)
        for i in range(5):  # published while the ledger is down, then deleted before it reads them
            await (await client.send(tp.topic, encode(cast("R-1", {"2": "for"}, executed=2 + i)), partition=0))
    admin = AIOKafkaAdminClient(**client_options(settings, "operator"))  # only the operator may delete records
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(before_offset=4)})
    finally:
        await admin.close()
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        report = await status(conn, settings)
        assert report["behind_log_start"] == [{"partition": f"{tp.topic}/0", "committed": 1, "log_start": 4}]
        # The restarted ledger records the loss for good, then logs what Kafka still has.
        async with running_ledger(settings) as ledger:
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 5)
            # The stall watch finds losses too, and may have read the committed offset while the seek was
            # recording this one (2, the parked row's offset + 1): a finder with that stale offset adds nothing.
            await ledger.note_lost(tp, 2, 4)
        report = await status(conn, settings)
        lost = await conn.fetch("SELECT source_offset, reason, detail FROM ledger_parked")
    finally:
        await conn.close()
    assert report["behind_log_start"] == [] and report["parked_reasons"] == {"lost_in_kafka": 1}
    assert [tuple(r) for r in lost] == [
        (1, "lost_in_kafka", "offsets 1..3 were deleted or expired in Kafka before the ledger logged them")
    ]


async def test_a_failure_that_is_not_the_records_is_retried_never_parked(settings):
    # The ledger's role loses its INSERT privilege: every batch fails, none by any record's fault.
    admin = await asyncpg.connect(settings.pg_dsn)
    try:
        async with producer(settings) as client:
            await publish(client, settings, [small_meeting(), register_event()])
            async with running_ledger(settings):
                await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2)
                await admin.execute("REVOKE INSERT ON ledger_log FROM vote_ledger_ledger")
                await publish(client, settings, [cast("R-1", {"2": "for"}, executed=i) for i in (1, 2, 3)])
                await asyncio.sleep(3)  # several failed attempts, spaced by the back-off
                assert await admin.fetchval("SELECT count(*) FROM ledger_parked") == 0
                assert await admin.fetchval("SELECT count(*) FROM ledger_log") == 2
                await admin.execute("GRANT INSERT ON ledger_log TO vote_ledger_ledger")
                await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 5, timeout=30)
        assert await admin.fetchval("SELECT count(*) FROM ledger_parked") == 0
    finally:
        await admin.close()


async def test_a_record_the_judge_raises_on_is_parked_and_the_rest_of_its_batch_logged(settings, monkeypatch):
    from projections.judge import Judge

    original = Judge.judge

    def judge(self, event, received=None):
        if getattr(event, "control_number", None) == "R-2":
            raise ArithmeticError("a bug of ours, triggered by one record")
        return original(self, event, received)

    monkeypatch.setattr(Judge, "judge", judge)
    votes = [cast(cn, {"2": "for"}, executed=1) for cn in ("R-1", "R-2", "B-1")]
    async with producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event(), *votes])
    async with running_ledger(settings):
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 4)
        # Committed one by one after the judge raised: the parked record may come after a later
        # partition's row (seen in a CI run), so wait for it too; the equality below still counts it once.
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_parked", 1)
        rows = await parked(settings.pg_dsn)
    assert [(r["reason"], r["detail"]) for r in rows] == [
        ("unprocessable", "ArithmeticError: a bug of ours, triggered by one record")
    ]


async def test_a_malformed_message_near_kafkas_size_limit_is_parked_and_its_copy_cut_to_fit(settings):
    huge = b"{" + b"x" * 1_048_300  # invalid JSON, a hair under the producer's 1 MiB limit: with the
    # parked copy's headers (reason, detail, source) it would be over it
    async with producer(settings) as client:
        await publish(client, settings, [small_meeting()])
        await (await client.send(settings.admin_topic, huge, key=b"m1"))
        await publish(client, settings, [register_event(), cast("R-1", {"2": "for"})])
    async with running_ledger(settings):
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 3)
        rows = await parked(settings.pg_dsn)
    assert [(r["reason"], len(r["value"])) for r in rows] == [("invalid_json", len(huge))]


async def test_a_malformed_message_with_a_key_near_kafkas_size_limit_is_parked_and_its_copy_cut_to_fit(settings):
    huge_key = b"k" * 1_048_300
    async with producer(settings) as client:
        await publish(client, settings, [small_meeting()])
        await (await client.send(settings.admin_topic, b"{", key=huge_key))
        await publish(client, settings, [register_event(), cast("R-1", {"2": "for"})])
    async with running_ledger(settings):
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 3)
        rows = await parked(settings.pg_dsn)
    assert [(r["reason"], len(r["key"])) for r in rows] == [("invalid_json", len(huge_key))]


@pytest.mark.parametrize("codec", ["gzip", "lz4", "snappy", "zstd"])
async def test_votes_a_channel_compressed_with_any_kafka_codec_are_logged(settings, codec):
    votes = [cast(cn, {"2": "for"}, executed=1) for cn in ("R-1", "R-2", "B-1")]
    async with producer(settings, compression_type=codec) as client:
        await publish(client, settings, [small_meeting(), register_event(), *votes])
    async with running_ledger(settings):
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log WHERE decision = 'accepted'", 5)
    assert await parked(settings.pg_dsn) == []


async def test_a_committed_transaction_on_the_admin_topic_holds_no_vote_back_and_an_aborted_one_is_never_read(settings):
    import time

    from aiokafka import AIOKafkaProducer

    transactional = AIOKafkaProducer(
        **client_options(settings, "operator"), transactional_id=f"{settings.topic_prefix}admin-pipeline"
    )
    await transactional.start()
    try:
        async with transactional.transaction():  # its commit marker takes the partition's last offset
            await transactional.send(settings.admin_topic, encode(small_meeting()), key=b"m1")
            await transactional.send(settings.admin_topic, encode(register_event()), key=b"m1")
        await transactional.begin_transaction()
        await transactional.send(settings.submissions_topic, encode(cast("R-1", {"2": "against"}, event_id="aborted")))
        await transactional.abort_transaction()
    finally:
        await transactional.stop()
    async with running_ledger(settings):
        async with producer(settings) as client:
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2)
            sent = time.monotonic()
            await publish(client, settings, [cast("R-1", {"2": "for"}, event_id="after-markers")])
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log WHERE event_id = 'after-markers'", 1)
            waited = time.monotonic() - sent
    assert waited < settings.stall_after_s, f"the vote waited {waited:.1f} s behind a transaction marker"
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ledger_log WHERE event_id = 'aborted'") == 0
        assert await conn.fetchval("SELECT count(*) FROM ledger_parked") == 0
    finally:
        await conn.close()


async def test_stray_records_on_the_heads_topic_are_skipped_and_every_real_head_still_read(settings):
    from services.runtime.chain_heads import read_heads

    async with producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()])
        async with running_ledger(settings):
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2)
        # A head is published when the ledger stops; then someone writes junk to the topic.
        with builder_that_sends_raw_header_keys():
            await (
                await client.send(settings.heads_topic, b'{"type":"chain.head"}', headers=[(RawHeaderKey("k"), b"")])
            )
        await (await client.send(settings.heads_topic, b"not a head at all"))
        async with running_ledger(settings):
            await publish(client, settings, [cast("R-1", {"2": "for"})])
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 3)
    heads = [h for h in await read_heads(settings) if h.chain == "meeting"]
    assert [h.position for h in heads][-1] == 3 and all(h.meeting_id == "m1" for h in heads)

"""Every submission gets exactly one answer on votes.decisions, also across a kill -9 of the ledger (issue 11)."""

import asyncio
import hashlib
import signal
import time
from dataclasses import replace

import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from events import encode
from events.answers import AnyAnswer, SubmissionDecided, SubmissionParked
from services.adapters.kafka.topics import client_options, partitions_of, producer, publish, publish_raw
from services.runtime.answers import AnswerRelay
from services.runtime.answers_cursor import answered_through
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import append, log_row, running_ledger, wait_for
from tests.integration.test_ledger_recovery import start_ledger

pytestmark = pytest.mark.integration

_answer = msgspec.json.Decoder(AnyAnswer)


async def read_answers(settings) -> list[tuple[int, bytes | None, AnyAnswer]]:
    """Every committed answer on the topic: (partition, key, answer), in partition then offset order."""
    tps = await partitions_of(settings, [settings.decisions_topic], "operator")
    consumer = AIOKafkaConsumer(
        **client_options(settings, "operator"), isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out = []
        deadline = time.monotonic() + 30
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "the answers topic could not be read to its end"
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                out += [(tp.partition, r.key, _answer.decode(r.value)) for r in records]
        return sorted(out, key=lambda item: item[0])
    finally:
        await consumer.stop()


async def answers_settled(settings, expected: int, timeout: float = 60) -> list[tuple[int, bytes | None, AnyAnswer]]:
    """The answers once there are ``expected`` of them, read again after a pause: none may follow."""
    deadline = time.monotonic() + timeout
    while len(answers := await read_answers(settings)) < expected:
        assert time.monotonic() < deadline, f"{len(answers)} answers, expected {expected} within {timeout} s"
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # the relay polls every 0.5 s: anything more would be there by now
    return await read_answers(settings)


async def test_every_submission_gets_exactly_one_answer_across_a_kill_9_of_the_ledger(settings, tmp_path):
    log = open(tmp_path / "ledger.log", "ab")
    numbers = ["R-1", "R-2", "B-1", "B-2", "X-404"]  # X-404 holds no position: rejected not_entitled
    votes = [cast(numbers[i % 5], {"2": ["for", "against"][i % 2]}, executed=1 + i / 1000) for i in range(400)]
    garbage = [(b"R-1", b'{"type": "vote.cast", "v": 1, "event_id": "g-1"'), (None, b"\xff\x00")]
    async with producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()])
        ledger = await start_ledger(settings, log, "ledger-a")
        try:
            await publish_raw(client, settings.submissions_topic, garbage)
            # Killed while it logs and answers: votes keep coming until the first answers are out.
            sent, deadline = 0, time.monotonic() + 60
            while not await read_answers(settings):
                assert time.monotonic() < deadline, "no answer within 60 s"
                await publish(client, settings, votes[sent : sent + 10])
                sent += 10
            ledger.send_signal(signal.SIGKILL)
            await ledger.wait()
            published_before = len(await read_answers(settings))
            await publish(client, settings, votes[sent:])
            ledger = await start_ledger(settings, log, "ledger-a")
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 402, timeout=90)
            answers = await answers_settled(settings, len(votes) + len(garbage), timeout=90)
        finally:
            ledger.send_signal(signal.SIGTERM)
            await ledger.wait()
    print(f"\n{published_before} of {len(votes) + len(garbage)} answers were out when the ledger was killed")
    decided = [a for _, _, a in answers if isinstance(a, SubmissionDecided)]
    assert sorted(a.event_id for a in decided) == sorted(v.event_id for v in votes)  # each exactly once
    conn = await asyncpg.connect(settings.pg_dsn)
    rows = {
        r["event_id"]: r for r in await conn.fetch("SELECT event_id, position, decision, reason, hash FROM ledger_log")
    }
    parked_ids = [r["id"] for r in await conn.fetch("SELECT id FROM ledger_parked ORDER BY id")]
    await conn.close()
    for answer in decided:
        row = rows[answer.event_id]
        assert (answer.position, answer.decision, answer.reason, answer.hash) == (
            row["position"],
            row["decision"],
            row["reason"],
            bytes(row["hash"]).hex(),
        )
    assert {a.reason for a in decided} == {None, "not_entitled"}
    parked = [a for _, _, a in answers if isinstance(a, SubmissionParked)]
    assert sorted(a.parked_id for a in parked) == parked_ids and len(parked_ids) == 2
    # Keyed by control number: each answer lands where its submission did (as many partitions).
    by_key = {key for _, key, a in answers if isinstance(a, SubmissionDecided)}
    assert by_key == {n.encode() for n in numbers}
    assert await answered_through(settings) == (max(r["position"] for r in rows.values()), parked_ids[-1])


async def test_a_parked_message_is_answered_under_its_event_id_or_by_its_partition_and_offset(settings):
    unknown_version = (
        b'{"type": "vote.cast", "v": 99, "event_id": "web:7", "meeting_id": "m1", "control_number": "R-2"}'
    )
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()])
        await publish_raw(client, settings.submissions_topic, [(b"R-2", unknown_version)])
        await client.send_and_wait(settings.submissions_topic, b"\x00 not json", partition=3)
        answers = await answers_settled(settings, 2)
    readable, unreadable = sorted((a for _, _, a in answers), key=lambda a: a.event_id is None)
    assert (readable.event_id, readable.reason) == ("web:7", "unsupported_version")  # type: ignore[union-attr]
    assert [k for _, k, a in answers if a is readable] == [b"R-2"]  # keyed by the control number it names
    # No id to read: answered anyway, keyless, on the partition the message was sent to.
    assert unreadable.event_id is None and unreadable.source_partition == 3  # type: ignore[union-attr]
    assert [(p, k) for p, k, a in answers if a is unreadable] == [(3, None)]


async def test_each_answer_carries_the_sha256_of_the_message_exactly_as_the_ledger_received_it(settings):
    # Spacing, member order and a raw non-ASCII character are kept as sent: the digest of the stored
    # payload's UTF-8 bytes must equal the digest of the bytes on the wire, or a client cannot match it.
    vote = encode(cast("R-1", {"2": "for"}, submitted_by="d\u00e9sk \U0001f5f3"))
    sent = b"{ " + vote[1:].replace(b'":', b'" :  ')  # between members only: no value holds '":'
    assert "d\u00e9sk \U0001f5f3".encode() in sent
    spoof = b'{"type": "vote.cast", "v": 99, "event_id": "web:7", "meeting_id": "m1", "control_number": "R-2"}'
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()])
        await publish_raw(client, settings.submissions_topic, [(b"R-1", sent), (b"R-2", spoof)])
        answers = await answers_settled(settings, 2)
    conn = await asyncpg.connect(settings.pg_dsn)
    stored = await conn.fetchval("SELECT payload::text FROM ledger_log WHERE control_number = 'R-1'")
    await conn.close()
    assert stored.encode() == sent  # the ledger stores the received bytes decoded, verbatim
    decided = next(a for _, _, a in answers if isinstance(a, SubmissionDecided))
    parked = next(a for _, _, a in answers if isinstance(a, SubmissionParked))
    assert decided.decision == "accepted" and decided.payload_sha256 == hashlib.sha256(sent).hexdigest()
    assert parked.payload_sha256 == hashlib.sha256(spoof).hexdigest()


async def test_a_submission_whose_kafka_key_is_another_control_number_is_rejected_and_answered_so(settings):
    vote = cast("R-1", {"2": "for"})
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()])
        await publish_raw(client, settings.submissions_topic, [(b"R-2", encode(vote))])
        answers = await answers_settled(settings, 1)
    conn = await asyncpg.connect(settings.pg_dsn)
    row = await conn.fetchrow("SELECT decision, reason FROM ledger_log WHERE event_id = $1", vote.event_id)
    await conn.close()
    assert (row["decision"], row["reason"]) == ("rejected", "key_mismatch")
    ((_, key, answer),) = answers
    assert (answer.event_id, answer.decision, answer.reason, key) == (vote.event_id, "rejected", "key_mismatch", b"R-1")


async def test_a_backlog_is_answered_in_order_once_and_how_fast(settings):
    """A relay started on a log of 5,000 rows answers each once, in log order per partition (rate printed)."""
    votes = [cast(f"R-{i % 2 + 1}", {"2": "for"}, executed=1 + i / 10_000) for i in range(5000)]
    conn = await asyncpg.connect(settings.pg_dsn)
    rows = [log_row(e) for e in (small_meeting(), register_event())]
    rows += [replace(log_row(v), source_topic=settings.submissions_topic, source_offset=i) for i, v in enumerate(votes)]
    await append(conn, rows)
    await conn.close()
    relay = AnswerRelay(settings)
    started = time.monotonic()
    await relay.start()
    try:
        while relay.published < len(votes):
            assert time.monotonic() - started < 60, f"{relay.published} answers within 60 s"
            await asyncio.sleep(0.05)
        took = time.monotonic() - started
    finally:
        await relay.stop()
    answers = await read_answers(settings)
    assert sorted(a.position for _, _, a in answers) == list(range(3, 3 + len(votes)))
    assert len({a.event_id for _, _, a in answers}) == len(answers) == len(votes)
    for partition in {p for p, _, _ in answers}:
        positions = [a.position for p, _, a in answers if p == partition]
        assert positions == sorted(positions)  # in log order within a partition
    print(f"\n{len(votes)} answers published in {took:.2f} s ({len(votes) / took:,.0f}/s, connection set-up included)")


async def test_two_relays_on_one_log_publish_each_answer_once_one_waiting_for_the_other(settings):
    votes = [cast("R-1", {"2": "for"}, executed=1 + i / 10_000) for i in range(300)]
    conn = await asyncpg.connect(settings.pg_dsn)
    rows = [replace(log_row(v), source_topic=settings.submissions_topic, source_offset=i) for i, v in enumerate(votes)]
    await append(conn, rows)
    await conn.close()
    first, second = AnswerRelay(settings), AnswerRelay(settings)
    await asyncio.gather(first.start(), second.start())
    try:
        deadline = time.monotonic() + 60
        while first.published + second.published < len(votes):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        # Whichever waited takes the lock over once the other stops, and finds nothing left to answer.
        await (first.stop() if first.published else second.stop())
        waiting = second if first.published else first
        while waiting.position < len(votes):
            assert time.monotonic() < deadline, "the waiting relay did not take over"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
    finally:
        await first.stop()
        await second.stop()
    assert sorted((first.published, second.published)) == [0, len(votes)]
    answers = await read_answers(settings)
    assert sorted(a.event_id for _, _, a in answers) == sorted(v.event_id for v in votes)

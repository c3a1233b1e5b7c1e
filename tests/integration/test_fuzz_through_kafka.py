"""A seeded fuzz through the real broker: 10,000 hostile messages mixed with valid votes.

Ends with every message logged or parked exactly once, by its Kafka coordinates, and every valid
vote logged: ingestion never stopped.
"""

import random

import asyncpg
import pytest

from events import encode
from services.adapters.kafka.topics import producer, publish
from tests.factories import cast, register_event, small_meeting
from tests.hostile import mutate
from tests.integration.helpers import RawHeaderKey, builder_that_sends_raw_header_keys, running_ledger, wait_for

pytestmark = pytest.mark.integration

SEED = 20261129
HOSTILE = 10_000
CONTROL_NUMBERS = ("R-1", "R-2", "B-1", "B-2")


def traffic(rng: random.Random):
    """(on_admin_topic, key, value, headers, event_id if valid else None), valid votes mixed in."""
    sent: set[bytes] = set()
    for i in range(HOSTILE + HOSTILE // 4):
        event = cast(
            rng.choice(CONTROL_NUMBERS),
            {"2": rng.choice(["for", "against"])},
            executed=1 + i / 10_000,
            event_id=f"fuzz-{i}",
        )
        vote = encode(event)
        valid = i % 5 == 0  # one in five is a valid vote, the rest are hostile
        value = vote if valid else mutate(rng, vote)
        if not valid and rng.random() < 0.01:
            value = None  # a tombstone: no value at all
        if value is not None and value in sent:
            continue  # the same bytes again would be a redelivery (R18), dropped rather than logged
        if value is not None:
            sent.add(value)
        headers = []
        roll = rng.random()
        if not valid and roll < 0.002:
            headers = [(RawHeaderKey("k"), b"v")]  # a header key the Kafka client cannot parse
        elif roll < 0.05:
            headers = [("trace", rng.randbytes(6))]  # a header value that is not UTF-8
        key = rng.choice([b"R-1", b"\xff\xfe", None, rng.randbytes(4)])
        if valid and key is not None:
            key = event.control_number.encode()  # a valid vote has the contract's key (another: key_mismatch)
        if key is None and value is None:
            key = b"tombstone"  # Kafka needs one of the two
        yield (not valid and rng.random() < 0.2), key, value, headers, f"fuzz-{i}" if valid else None


async def test_ten_thousand_hostile_messages_are_each_logged_or_parked_once_and_every_vote_logged(settings):
    rng = random.Random(SEED)
    valid: set[str] = set()
    where: dict[int, str] = {}
    async with producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()])
        pending = []
        with builder_that_sends_raw_header_keys():
            for on_admin, key, value, headers, event_id in traffic(rng):
                topic = settings.admin_topic if on_admin else settings.submissions_topic
                pending.append(await client.send(topic, value, key=key, headers=headers))
                if event_id:
                    valid.add(event_id)
                    where[len(pending) - 1] = event_id
            metadata = [await p for p in pending]
    coordinates = [(m.topic, m.partition, m.offset) for m in metadata]
    assert len(coordinates) >= HOSTILE

    async with running_ledger(settings):
        # Everything published is accounted for: the meeting, its register, and each fuzz message.
        await wait_for(
            settings.pg_dsn,
            "SELECT (SELECT count(*) FROM ledger_log) + (SELECT count(*) FROM ledger_parked)",
            2 + len(coordinates),
            timeout=300,
        )
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        logged = await conn.fetch(
            "SELECT source_topic, source_partition, source_offset, event_id, decision, reason"
            " FROM ledger_log WHERE event_id LIKE 'fuzz-%' OR source_offset IS NOT NULL"
        )
        parked = await conn.fetch("SELECT source_topic, source_partition, source_offset, reason FROM ledger_parked")
    finally:
        await conn.close()
    seen = [(r["source_topic"], r["source_partition"], r["source_offset"]) for r in [*logged, *parked]]
    assert len(seen) == len(set(seen)), "a message was logged or parked twice"
    assert set(coordinates) <= set(seen), "a message was neither logged nor parked"
    accepted = {r["event_id"] for r in logged if r["decision"] == "accepted"}
    decisions = {r["event_id"]: (r["decision"], r["reason"]) for r in logged}
    parked_why = {(r["source_topic"], r["source_partition"], r["source_offset"]): r["reason"] for r in parked}
    parked_valid = {where[i]: parked_why[c] for i, c in enumerate(coordinates) if i in where and c in parked_why}
    missed = {
        event_id: decisions.get(event_id, parked_valid.get(event_id, "lost")) for event_id in sorted(valid - accepted)
    }
    assert not missed, f"{len(missed)} valid votes were not accepted: {list(missed.items())[:5]}"
    reasons = {r["reason"] for r in parked}
    assert {"invalid_json", "invalid_utf8", "unreadable_record", "empty_message"} <= reasons

"""A big batch is decoded and judged in slices, yielding to the event loop between them: the decisions of one go."""

import asyncio
import random

from events import ChannelKeyRegistered, encode
from projections import signing
from projections.judge import Judge
from services.runtime import ingest
from tests.factories import at, cast, register_event, small_meeting

ADMIN, VOTES = "meetings.admin", "votes.submissions"
DESK = bytes(range(32)).hex()  # a fixed test key, never a real channel's


def batch(n: int, seed: int = 7) -> list[ingest.Consumed]:
    """A signed batch of n votes with redeliveries, a tampered copy, unsigned and undecodable records,
    and the meeting's administration after the votes (decided first all the same)."""
    rng = random.Random(seed)
    key = ChannelKeyRegistered(
        event_id="key-desk-k1",
        meeting_id="m1",
        channel_id="desk",
        key_id="k1",
        public_key=signing.public_key_of(DESK),
        kinds=["internet", "phone", "mail"],
        effective_at=at(-24),
    )
    votes = [
        cast(rng.choice(["R-1", "R-2", "B-1", "X-404"]), {"2": rng.choice(["for", "against"])}, 1 + i / 100)
        for i in range(n)
    ]
    votes = [cast(v.control_number, v.choices, 1 + i / 100, event_id=f"desk:{i}") for i, v in enumerate(votes)]
    signed = signing.sign_batch(votes, "desk", "k1", DESK)
    values = [*signed, signed[3], signed[5].replace(b'"desk:5"', b'"desk:5x"')]
    values += [encode(cast("R-1", {"2": "for"}, event_id="unsigned-1")), b"\x00 not json", signed[3]]
    records = [ingest.Consumed(VOTES, i % 4, i, None, v, None, 1_767_225_600_000 + i, 1) for i, v in enumerate(values)]
    admin = [encode(small_meeting(signatures_required=True)), encode(register_event()), encode(key)]
    return records + [ingest.Consumed(ADMIN, 0, i, None, v) for i, v in enumerate(admin)]


def test_a_batch_decided_in_slices_gives_the_rows_and_parked_messages_of_one_go():
    records = batch(500)
    decoded, parked = ingest.decode_batch(records)
    whole = ingest.decide(Judge(), decoded, {}, ADMIN)
    reasons = {None, "not_entitled", "signature_required", "bad_signature"}
    assert {r.reason for r in whole.rows} == reasons
    assert whole.duplicates == 2 and len(parked) == 1
    for size in (1, 7, 64, 499, 500, 10_000):
        sliced_decoded, sliced_parked = asyncio.run(ingest.decode_in_slices(records, size))
        assert (sliced_decoded, sliced_parked) == (decoded, parked)
        sliced = asyncio.run(ingest.decide_in_slices(Judge(), sliced_decoded, {}, ADMIN, size))
        assert (sliced.rows, sliced.parked, sliced.duplicates) == (whole.rows, whole.parked, whole.duplicates)


def test_the_event_loop_runs_between_slices_of_decoding_and_of_judging():
    records = batch(200)

    async def ticks_during(work) -> int:
        ticks = 0
        done = False

        async def ticker():
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)  # the ticker is running
        before = ticks
        await work()
        during = ticks - before
        done = True
        await task
        return during

    async def decode(size):
        return await ingest.decode_in_slices(records, size)

    async def decide(size):
        decoded, _ = ingest.decode_batch(records)
        return await ingest.decide_in_slices(Judge(), decoded, {}, ADMIN, size)

    slices = -(-len(records) // 50)
    assert asyncio.run(ticks_during(lambda: decode(50))) >= slices - 1
    assert asyncio.run(ticks_during(lambda: decide(50))) >= slices - 1
    assert asyncio.run(ticks_during(lambda: decide(len(records)))) == 0  # one slice: never let go

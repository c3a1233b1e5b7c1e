"""Whatever bytes arrive, decoding and deciding a batch parks or logs each record, never raises."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from events import encode
from projections.judge import Judge
from projections.log_row import KnownId
from services.runtime import ingest
from tests.factories import cast, register_event, small_meeting
from tests.hostile import mutate

ADMIN, VOTES = "meetings.admin", "votes.submissions"
GOOD = [encode(e) for e in (small_meeting(), register_event(), cast("R-1", {"2": "for"}, executed=1))]


class Rec:
    """A consumer record as the ledger sees it."""

    def __init__(self, topic: str, offset: int, value: bytes | None, key: bytes | None = None) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = topic, 0, offset, key, value


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_every_record_of_a_hostile_batch_is_logged_or_parked_exactly_once(seed):
    rng = random.Random(seed)
    records = []
    for offset in range(60):
        data = rng.choice(GOOD)
        value = data if rng.random() < 0.3 else mutate(rng, data)
        if rng.random() < 0.02:
            value = None
        records.append(Rec(rng.choice([ADMIN, VOTES]), offset, value))
    decoded, parked = ingest.decode_batch(records)
    decided = ingest.decide(Judge(), decoded, {}, ADMIN)
    logged = {(r.source_topic, r.source_offset) for r in decided.rows}
    parked_at = {(p.source_topic, p.source_offset) for p in parked + decided.parked}
    assert not logged & parked_at
    # Every record is logged, parked, or a duplicate of one logged (R18).
    assert len(logged) + len(parked_at) + decided.duplicates == len(records)
    for row in decided.rows:
        row.payload.encode("utf-8")  # storable text, whatever arrived


def test_the_same_event_id_with_other_bytes_is_logged_rejected_as_duplicate_event_id():
    vote = encode(cast("R-1", {"2": "for"}, executed=1, event_id="e-1"))
    squat = encode(cast("R-1", {"2": "against"}, executed=2, event_id="e-1"))
    batch = [
        Rec(ADMIN, 0, GOOD[0]),
        Rec(ADMIN, 1, GOOD[1]),
        Rec(VOTES, 2, vote),
        Rec(VOTES, 3, squat),
        Rec(VOTES, 4, vote),
        Rec(VOTES, 5, squat),
    ]
    decoded, _ = ingest.decode_batch(batch)
    decided = ingest.decide(Judge(), decoded, {}, ADMIN)
    assert [(r.source_offset, r.decision, r.reason) for r in decided.rows] == [
        (0, "accepted", None),
        (1, "accepted", None),
        (2, "accepted", None),
        (3, "rejected", "duplicate_event_id"),
    ]
    assert decided.duplicates == 2  # the redelivered vote, and the squat sent twice
    # Already in the log: the same bytes are a redelivery, other bytes a squat.
    again = ingest.decide(Judge(), decoded[2:3], {("m1", "e-1"): KnownId([vote], applied=True)}, ADMIN)
    assert again.rows == [] and again.duplicates == 1
    later = ingest.decide(Judge(), decoded[3:4], {("m1", "e-1"): KnownId([vote], applied=True)}, ADMIN)
    assert [(r.decision, r.reason) for r in later.rows] == [("rejected", "duplicate_event_id")]


def test_a_rejected_row_holds_no_event_id_so_a_squat_on_the_wrong_topic_cannot_block_the_meeting():
    meeting = encode(small_meeting())
    # Published on the votes topic under the id the administration will use: rejected, applies nothing.
    decoded, _ = ingest.decode_batch([Rec(VOTES, 0, meeting), Rec(ADMIN, 0, meeting[:-1] + b" }")])
    decided = ingest.decide(Judge(), decoded, {}, ADMIN)
    squat = ingest.decide(Judge(), decoded[:1], {}, ADMIN)
    real = ingest.decide(Judge(), decoded[1:], {("m1", "meeting-1"): KnownId([meeting], applied=False)}, ADMIN)
    assert [(r.decision, r.reason) for r in squat.rows] == [("rejected", "wrong_topic")]
    assert [(r.decision, r.reason) for r in real.rows] == [("accepted", None)]
    # In one batch the administration is judged first, and the copy is the duplicate.
    assert [(r.decision, r.reason) for r in decided.rows] == [("accepted", None), ("rejected", "duplicate_event_id")]


def test_a_judge_that_raises_parks_that_record_and_marks_the_judge_suspect():
    class Exploding(Judge):
        def judge(self, event, received=None):
            if getattr(event, "control_number", None) == "R-1":
                raise ZeroDivisionError("boom")
            return super().judge(event, received)

    decoded, _ = ingest.decode_batch([Rec(ADMIN, 0, GOOD[0]), Rec(ADMIN, 1, GOOD[1]), Rec(VOTES, 2, GOOD[2])])
    decided = ingest.decide(Exploding(), decoded, {}, ADMIN)
    assert [r.source_offset for r in decided.rows] == [0, 1]
    assert [(p.source_offset, p.reason, p.detail) for p in decided.parked] == [
        (2, "unprocessable", "ZeroDivisionError: boom")
    ]
    assert decided.judge_suspect

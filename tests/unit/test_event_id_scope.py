"""R18 holds event ids per meeting: an id taken in one meeting takes nothing from another."""

from events import encode
from projections.judge import Judge
from projections.log_row import KnownId
from services.runtime import ingest
from tests.factories import cast, register_event, small_meeting

ADMIN, VOTES = "meetings.admin", "votes.submissions"


class Rec:
    """A consumer record as the ledger sees it."""

    def __init__(self, topic: str, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = topic, 0, offset, None, value


def _decoded(*pairs: tuple[str, bytes]):
    decoded, parked = ingest.decode_batch([Rec(topic, i, value) for i, (topic, value) in enumerate(pairs)])
    assert parked == []
    return decoded


def _known(rows) -> dict[tuple[str, str], KnownId]:
    """What known_event_ids would load after these rows were appended."""
    known: dict[tuple[str, str], KnownId] = {}
    for row in rows:
        entry = known.setdefault((row.meeting_id, row.event_id), KnownId())
        entry.payloads.append(row.payload.encode())
        entry.applied = entry.applied or row.decision == "accepted"
    return known


def _two_meetings() -> list[tuple[str, bytes]]:
    return [
        (ADMIN, encode(small_meeting())),
        (ADMIN, encode(register_event())),
        (ADMIN, encode(small_meeting(event_id="meeting-2", meeting_id="m2"))),
        (ADMIN, encode(register_event(meeting_id="m2"))),
    ]


def test_the_same_event_id_is_accepted_once_in_each_of_two_meetings():
    in_b = encode(cast("R-1", {"2": "against"}, executed=1, event_id="e-42", meeting_id="m2"))
    in_a = encode(cast("R-1", {"2": "for"}, executed=2, event_id="e-42"))
    decided = ingest.decide(Judge(), _decoded(*_two_meetings(), (VOTES, in_b), (VOTES, in_a)), {}, ADMIN)
    assert [(r.meeting_id, r.event_id, r.decision, r.reason) for r in decided.rows[4:]] == [
        ("m2", "e-42", "accepted", None),
        ("m1", "e-42", "accepted", None),
    ]
    # Taken in meeting m2 in an earlier batch (already in the log): m1's vote under the id still applies.
    judge = Judge()
    setup = ingest.decide(judge, _decoded(*_two_meetings(), (VOTES, in_b)), {}, ADMIN)
    later = ingest.decide(judge, _decoded((VOTES, in_a)), _known(setup.rows), ADMIN)
    assert [(r.meeting_id, r.decision, r.reason) for r in later.rows] == [("m1", "accepted", None)]


def test_within_a_meeting_a_redelivery_is_dropped_and_other_bytes_are_a_duplicate_event_id():
    vote = encode(cast("R-1", {"2": "for"}, executed=1, event_id="e-7"))
    other = encode(cast("R-1", {"2": "against"}, executed=2, event_id="e-7"))
    in_b = encode(cast("R-1", {"2": "for"}, executed=1, event_id="e-7", meeting_id="m2"))
    decided = ingest.decide(
        Judge(), _decoded(*_two_meetings(), (VOTES, vote), (VOTES, vote), (VOTES, other), (VOTES, in_b)), {}, ADMIN
    )
    assert [(r.meeting_id, r.decision, r.reason) for r in decided.rows[4:]] == [
        ("m1", "accepted", None),
        ("m1", "rejected", "duplicate_event_id"),
        ("m2", "accepted", None),
    ]
    assert decided.duplicates == 1
    # Across batches, from what the log holds.
    judge = Judge()
    setup = ingest.decide(judge, _decoded(*_two_meetings(), (VOTES, vote)), {}, ADMIN)
    again = ingest.decide(judge, _decoded((VOTES, vote)), _known(setup.rows), ADMIN)
    assert again.rows == [] and again.duplicates == 1
    squat = ingest.decide(judge, _decoded((VOTES, other)), _known(setup.rows), ADMIN)
    assert [(r.meeting_id, r.decision, r.reason) for r in squat.rows] == [("m1", "rejected", "duplicate_event_id")]


def test_an_unsigned_vote_under_another_meetings_scheduled_id_does_not_keep_that_meeting_from_being_scheduled():
    judge = Judge()
    first = _decoded((ADMIN, encode(small_meeting())), (ADMIN, encode(register_event())))
    # m1 requires no signatures: an unsigned vote there takes the id m2's meeting.scheduled will have.
    squat = encode(cast("R-1", {"2": "for"}, executed=1, event_id="meeting-2"))
    setup = ingest.decide(judge, first + _decoded((VOTES, squat)), {}, ADMIN)
    assert [(r.event_id, r.decision) for r in setup.rows] == [("meeting-1", "accepted"), ("reg-m1", "accepted")] + [
        ("meeting-2", "accepted")
    ]
    scheduled = ingest.decide(
        judge,
        _decoded(
            (ADMIN, encode(small_meeting(event_id="meeting-2", meeting_id="m2"))),
            (ADMIN, encode(register_event(meeting_id="m2"))),
            (VOTES, encode(cast("R-1", {"2": "for"}, executed=2, meeting_id="m2"))),
        ),
        _known(setup.rows),
        ADMIN,
    )
    assert [(r.meeting_id, r.type, r.decision, r.reason) for r in scheduled.rows] == [
        ("m2", "meeting.scheduled", "accepted", None),
        ("m2", "positions.recorded", "accepted", None),
        ("m2", "vote.cast", "accepted", None),
    ]
    # In one batch (administration judged first) neither takes the other's id either.
    together = ingest.decide(
        Judge(),
        first + _decoded((VOTES, squat), (ADMIN, encode(small_meeting(event_id="meeting-2", meeting_id="m2")))),
        {},
        ADMIN,
    )
    assert [(r.meeting_id, r.event_id, r.decision) for r in together.rows] == [
        ("m1", "meeting-1", "accepted"),
        ("m1", "reg-m1", "accepted"),
        ("m2", "meeting-2", "accepted"),
        ("m1", "meeting-2", "accepted"),
    ]

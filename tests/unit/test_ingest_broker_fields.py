"""The ledger's own checks on a Kafka record: its key against the payload's (key_mismatch), and the broker's time."""

from datetime import UTC, datetime

from events import encode
from projections.judge import Judge
from services.runtime import ingest
from tests.factories import cast, register_event, small_meeting

ADMIN, VOTES = "meetings.admin", "votes.submissions"


def _records(vote_key: bytes | None, timestamp_type: int = 1, admin_key: bytes | None = b"m1") -> list[ingest.Consumed]:
    admin = [encode(small_meeting()), encode(register_event())]
    vote = encode(cast("R-1", {"2": "for"}, executed=1))
    return [
        *(ingest.Consumed(ADMIN, 0, offset, admin_key, value) for offset, value in enumerate(admin)),
        ingest.Consumed(VOTES, 0, 0, vote_key, vote, None, 1_767_225_600_123, timestamp_type),
    ]


def _decide(records: list[ingest.Consumed]):
    decoded, parked = ingest.decode_batch(records)
    assert parked == []
    return ingest.decide(Judge(), decoded, {}, ADMIN).rows


def test_a_submission_whose_kafka_key_names_another_control_number_is_rejected_as_key_mismatch():
    rows = _decide(_records(b"R-2"))
    assert [(r.decision, r.reason) for r in rows][-1] == ("rejected", "key_mismatch")


def test_a_submission_keyed_by_its_control_number_or_sent_without_a_key_is_judged():
    assert _decide(_records(b"R-1"))[-1].decision == "accepted"
    assert _decide(_records(None))[-1].decision == "accepted"


def test_an_admin_event_keyed_by_another_meeting_is_rejected_as_key_mismatch_and_by_its_own_or_none_is_judged():
    # The wire contract keys meetings.admin by the meeting id: an amendment keyed ctB for meeting ctA was accepted.
    rows = _decide(_records(b"R-1", admin_key=b"m2"))
    assert [(r.decision, r.reason) for r in rows] == [("rejected", "key_mismatch")] * 2 + [
        ("rejected", "unknown_meeting")
    ]
    assert [r.decision for r in _decide(_records(b"R-1", admin_key=b"m1"))] == ["accepted"] * 3
    assert [r.decision for r in _decide(_records(b"R-1", admin_key=None))] == ["accepted"] * 3


def test_the_broker_time_is_recorded_only_when_the_topic_stamps_log_append_time():
    appended = _decide(_records(b"R-1"))[-1].appended_at
    assert appended == datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert _decide(_records(b"R-1", timestamp_type=0))[-1].appended_at is None  # the producer's CreateTime
    assert _decide(_records(b"R-1"))[0].appended_at is None  # an admin record without a timestamp


def test_a_timestamp_no_datetime_can_hold_gives_no_broker_time_rather_than_an_error():
    record = ingest.Consumed(VOTES, 0, 0, None, b"{}", None, 2**62, 1)
    assert ingest.appended_at(record) is None

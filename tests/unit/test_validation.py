"""Stateless validation of submissions, with the reason code of each rule (R1-R4, R8, R10-R12)."""

import pytest

from events import PollsClosed
from projections import validation as v
from projections.judge import Judge
from tests.factories import at, cast, meeting, register_event, revoke, small_meeting


@pytest.fixture
def m():
    return meeting()


def test_a_complete_valid_internet_vote_is_accepted(m):
    assert v.validate_vote_cast(m, cast("R-1", {"1.1": "for", "2": "against", "5": "3y"})) is None


def test_r1_a_control_number_not_on_the_register_is_not_entitled(m):
    assert v.validate_vote_cast(m, cast("X-9", {"2": "for"})) == v.NOT_ENTITLED


def test_r2_a_partial_vote_is_accepted_but_more_than_the_position_is_refused(m):
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, shares=1500)) is None
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, shares=3001)) == v.EXCEEDS_POSITION


def test_r3_a_split_up_to_the_represented_shares_is_accepted_and_beyond_is_an_over_vote(m):
    assert v.validate_vote_cast(m, cast("R-1", {"2": {"for": 2000, "against": 1000}})) is None
    assert v.validate_vote_cast(m, cast("R-1", {"2": {"for": 2000, "against": 1001}})) == v.OVER_VOTE
    assert v.validate_vote_cast(m, cast("R-1", {"2": {"for": 600, "against": 401}}, shares=1000)) == v.OVER_VOTE


def test_r4_options_must_be_the_items_own_and_items_must_exist(m):
    assert v.validate_vote_cast(m, cast("R-1", {"5": "for"})) == v.INVALID_CHOICE
    assert v.validate_vote_cast(m, cast("R-1", {"2": "3y"})) == v.INVALID_CHOICE
    assert v.validate_vote_cast(m, cast("R-1", {"2": {"maybe": 5}})) == v.INVALID_CHOICE
    assert v.validate_vote_cast(m, cast("R-1", {"9": "for"})) == v.UNKNOWN_ITEM


def test_r8_a_beneficial_owner_votes_in_person_only_with_a_legal_proxy(m):
    assert v.validate_vote_cast(m, cast("B-1", {"2": "for"}, channel="in_person")) == v.NO_LEGAL_PROXY
    assert v.validate_vote_cast(m, cast("B-1", {"2": "for"}, channel="in_person", legal_proxy_id="LP-7")) is None
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, channel="in_person")) is None


def test_r10_discretionary_votes_are_for_nominees_on_routine_items_only(m):
    assert v.validate_vote_cast(m, cast("B-1", {"2": "for"}, channel="broker", discretionary=True)) is None
    assert (
        v.validate_vote_cast(m, cast("B-1", {"3": "for"}, channel="broker", discretionary=True))
        == v.DISCRETIONARY_NOT_ALLOWED
    )
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, discretionary=True)) == v.DISCRETIONARY_NOT_ALLOWED


def test_r11_a_mail_card_must_be_signed_by_every_joint_holder(m):
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, channel="mail")) == v.UNSIGNED
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, channel="mail", signatures=[])) == v.UNSIGNED
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, channel="mail", signatures=[" "])) == v.UNSIGNED
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, channel="mail", signatures=["Alice"])) is None
    assert (
        v.validate_vote_cast(m, cast("R-2", {"2": "for"}, channel="mail", signatures=["Carl"]))
        == v.MISSING_JOINT_SIGNATURE
    )
    assert v.validate_vote_cast(m, cast("R-2", {"2": "for"}, channel="mail", signatures=["carl ", "Dana"])) is None
    assert v.validate_vote_cast(m, cast("R-2", {"2": "for"}, channel="internet")) is None  # authenticated by number


def test_r12_internet_and_phone_votes_after_the_cutoff_are_refused_but_mail_is_not():
    m = meeting(small_meeting())
    late = 24 * 29 + 1
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, executed=late)) == v.CUTOFF_PASSED
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, executed=late, channel="phone")) == v.CUTOFF_PASSED
    assert (
        v.validate_vote_cast(m, cast("R-1", {"2": "for"}, executed=late, channel="mail", signatures=["Alice"])) is None
    )


def test_r12_after_the_polls_close_submissions_are_refused_only_when_every_item_they_mark_is_closed():
    m = meeting()
    m.close_polls(PollsClosed(event_id="c1", meeting_id="m1", closed_at=at(100), items=["2"]))
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, executed=101, channel="in_person")) == v.POLL_CLOSED
    # R12 per item: a mark on an open item is accepted (the fold counts it on the open items only).
    assert v.validate_vote_cast(m, cast("R-1", {"3": "for"}, executed=101, channel="in_person")) is None
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for", "3": "for"}, executed=101, channel="in_person")) is None
    # Marking nothing (an attendance), or revoking, is about every item: other items are still open.
    assert v.validate_vote_cast(m, cast("R-1", {}, executed=101, channel="in_person")) is None
    assert v.validate_vote_revoked(m, revoke("R-1", executed=101)) is None
    assert v.validate_vote_cast(m, cast("R-1", {"2": "for"}, executed=99, received=100, channel="in_person")) is None
    m.close_polls(PollsClosed(event_id="c2", meeting_id="m1", closed_at=at(200)))
    assert v.validate_vote_cast(m, cast("R-1", {"3": "for"}, executed=201, channel="in_person")) == v.POLL_CLOSED
    assert v.validate_vote_cast(m, cast("R-1", {}, executed=201, channel="in_person")) == v.POLL_CLOSED
    assert v.validate_vote_revoked(m, revoke("R-1", executed=201)) == v.POLL_CLOSED


def test_the_judge_refuses_votes_for_meetings_it_has_not_seen_and_duplicate_admin_events():
    judge = Judge()
    assert judge.judge(cast("R-1", {"2": "for"})) == v.UNKNOWN_MEETING
    assert judge.judge(register_event()) == v.UNKNOWN_MEETING
    assert judge.judge(small_meeting()) is None
    assert judge.judge(small_meeting(event_id="again")) == v.DUPLICATE_MEETING
    assert judge.judge(register_event()) is None
    assert judge.judge(register_event()) == v.DUPLICATE_CHUNK
    assert judge.judge(cast("R-1", {"2": "for"})) is None
    assert judge.judge(_chunk_redefining("R-1")) == v.DUPLICATE_POSITION


def _chunk_redefining(control_number):
    from events import Position, PositionsRecorded

    return PositionsRecorded(
        event_id="again-1",
        meeting_id="m1",
        chunk=1,
        chunks=2,
        positions=[Position(control_number=control_number, kind="registered", shares=5, holders=["Zed"])],
    )

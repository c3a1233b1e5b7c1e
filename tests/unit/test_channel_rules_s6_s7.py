"""Event-id namespaces for every submission (S6), plausible times (S7), weak keys, and the hex S2 checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import ChannelAuth, MalformedMessage, decode, encode
from projections import signing, validation
from projections.judge import Judge, Received
from projections.validation_channels import foreign_event_id, implausible_time, namespace_of
from services.runtime.ingest import Consumed, decide
from tests.factories import at, cast, register_event, small_meeting
from tests.unit.test_channel_rules import DESK, OTHER, judge, key_registered, key_revoked, one, signed, vote


def optional_meeting(j: Judge | None = None, meeting_id: str = "m1") -> Judge:
    """A judge (or the one given) with a meeting that does not require signatures."""
    j = j or Judge()
    assert j.judge(small_meeting(event_id=f"meeting-{meeting_id}", meeting_id=meeting_id)) is None
    assert j.judge(register_event(meeting_id=meeting_id)) is None
    return j


# --- S6: an event id "<channel_id>:<rest>" belongs to that channel, signed or not ------------------


def test_s6_an_unsigned_submission_may_not_use_a_channels_namespace_even_where_signatures_are_optional():
    j = optional_meeting()
    assert j.judge(cast("R-1", {"2": "for"}, event_id="desk:0042")) == validation.FOREIGN_EVENT_ID
    assert j.judge(cast("R-1", {"2": "for"}, event_id="0b6f6a0e-4a8f-4a43-9d0e-2f1f3f0b2f60")) is None  # a UUID
    # A prefix that is no channel id (capitals, a slash, empty) is no namespace: an ordinary unsigned id.
    for event_id in ("Desk:0042", "m1/keys:x", ":0042", "desk-0042"):
        assert j.judge(cast("R-1", {"2": "for"}, event_id=event_id)) is None, event_id


def test_s6_squatting_a_channels_next_id_in_another_meeting_no_longer_refuses_its_signed_vote():
    """Review M1: the squat in a meeting without signatures is refused, so R18 lets the desk's own vote in."""
    j = optional_meeting(judge(), meeting_id="m2")
    squat = cast("R-1", {"2": "for"}, event_id="desk:0042", meeting_id="m2")
    [(genuine, received)] = signed([cast("R-2", {"2": "for"}, event_id="desk:0042")])
    records = [
        Consumed("votes.submissions", 0, 0, b"R-1", encode(squat)),
        Consumed("votes.submissions", 0, 1, b"R-2", received.payload.encode()),
    ]
    rows = decide(j, [(records[0], squat), (records[1], genuine)], {}, "meetings.admin").rows
    assert [(r.meeting_id, r.event_id, r.decision, r.reason) for r in rows] == [
        ("m2", "desk:0042", "rejected", "foreign_event_id"),
        ("m1", "desk:0042", "accepted", None),
    ]


def test_s6_a_channel_signing_under_another_channels_namespace_is_refused_where_signatures_are_optional():
    j = optional_meeting()
    assert j.judge(key_registered("bx", "b1", OTHER, ["internet"])) is None
    assert one(vote(prefix="desk"), channel_id="bx", key_id="b1", private=OTHER, judge=j) == "foreign_event_id"
    assert one(vote(prefix="bx"), channel_id="bx", key_id="b1", private=OTHER, judge=j) is None


def auth_of(channel_id: str) -> ChannelAuth:
    return ChannelAuth(channel_id=channel_id, key_id="k", signature="0" * 128, root="0" * 64)


CHANNEL_IDS = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,8}\Z")
EVENT_IDS = st.one_of(
    st.builds(lambda c, rest: f"{c}:{rest}", CHANNEL_IDS, st.text(max_size=8)),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(EVENT_IDS, st.lists(CHANNEL_IDS, min_size=2, max_size=4, unique=True))
def test_s6_every_event_id_is_usable_by_one_party_at_most_the_channel_it_names_or_unsigned_submitters(event_id, ids):
    """The invariant R18 relies on: two parties can never both use an id, so neither can squat the other's."""
    event = cast("R-1", {"2": "for"}, event_id=event_id or "x")
    users = [c for c in ids if foreign_event_id(msgspec.structs.replace(event, auth=auth_of(c))) is None]
    unsigned_may = foreign_event_id(event) is None
    assert len(users) + unsigned_may <= 1
    owner = namespace_of(event.event_id)
    assert unsigned_may == (owner is None)
    assert users == [c for c in ids if c == owner]


# --- S7: plausible times, in meetings that require signatures ---------------------------------------


def test_s7_a_post_dated_instruction_is_implausible_so_it_cannot_stand_against_every_later_one():
    """The adversary's t22: executed_at 2099 would win R5 over every genuine later vote; now it is refused."""
    post_dated = msgspec.structs.replace(vote(), executed_at=datetime(2099, 1, 1, tzinfo=UTC))
    assert one(post_dated) == validation.IMPLAUSIBLE_TIME
    assert one(vote(executed=2, received=2)) is None  # executed when received: plausible
    assert one(vote(executed=2, received=2 - 1e-9)) == validation.IMPLAUSIBLE_TIME  # a microsecond early
    # A meeting that does not require signatures replays as it was judged before S7 existed.
    assert optional_meeting().judge(msgspec.structs.replace(post_dated, auth=None, event_id="e-2099")) is None


def test_s7_received_after_the_broker_appended_it_beyond_the_grace_is_implausible_and_only_with_the_broker_clock():
    appended = at(2)  # the small meeting here has broker_grace_s = 60
    assert one(vote(received=2), appended_at=appended + timedelta(seconds=0)) is None
    assert one(vote(executed=1, received=2 + 60 / 3600), appended_at=appended) is None  # within the grace
    late_clock = vote(executed=1, received=2 + 61 / 3600)
    assert one(late_clock, appended_at=appended) == validation.IMPLAUSIBLE_TIME
    assert one(vote(executed=1, received=2 + 61 / 3600)) is None  # no broker time: nothing to compare with
    assert one(vote(executed=1, received=30), appended_at=appended, judge=judge(broker_grace_s=None)) is None


def test_s7_runs_after_s6_and_before_r1():
    post_dated = {"executed_at": datetime(2099, 1, 1, tzinfo=UTC)}
    assert one(msgspec.structs.replace(vote(prefix="bx"), **post_dated)) == validation.FOREIGN_EVENT_ID
    assert one(msgspec.structs.replace(vote("R-9"), **post_dated)) == validation.IMPLAUSIBLE_TIME


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0, 40, allow_nan=False),
    st.floats(0, 40, allow_nan=False),
    st.none() | st.floats(0, 40, allow_nan=False),
    st.none() | st.integers(0, 7200),
)
def test_s7_refuses_exactly_the_times_no_honest_channel_and_broker_produce(executed, received, appended, grace):
    j = judge(broker_grace_s=grace)
    event = vote(executed=executed, received=received)
    appended_at = None if appended is None else at(appended)
    implausible = event.executed_at > event.received_at or (
        grace is not None and appended_at is not None and event.received_at > appended_at + timedelta(seconds=grace)
    )
    assert (implausible_time(j.meetings["m1"], event, appended_at) is not None) == implausible


# --- Weak keys at registration -----------------------------------------------------------------------

SMALL_ORDER = [
    "00" * 32,  # all zero: a point of order 4
    "01" + "00" * 31,  # the identity
    "ec" + "ff" * 30 + "7f",  # y = -1: order 2
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "ed" + "ff" * 30 + "7f",  # y = p: a non-canonical encoding
]


@pytest.mark.parametrize("public_key", SMALL_ORDER)
def test_a_key_that_is_no_ed25519_point_of_large_order_is_refused_at_registration(public_key):
    j = judge()
    event = msgspec.structs.replace(key_registered("desk", "k7", OTHER, ["internet"]), public_key=public_key)
    assert j.judge(event) == validation.INVALID_KEY
    assert j.meetings["m1"].keys.get("desk", "k7") is None
    assert j.judge(key_registered("desk", "k7", OTHER, ["internet"])) is None  # a real key: registered


def test_an_invalid_key_is_reported_before_a_duplicate_one():
    event = msgspec.structs.replace(key_registered("desk", "k1", OTHER, ["internet"]), public_key="00" * 32)
    assert judge().judge(event) == validation.INVALID_KEY


# --- S2: lowercase hex, checked by the judge rather than the decoder ----------------------------------


def tampered(received: Received, **auth_fields) -> str:
    raw = json.loads(received.payload)
    raw["auth"].update(auth_fields)
    return json.dumps(raw)


def test_s2_a_signature_root_or_path_not_in_lowercase_hex_is_logged_as_a_bad_signature_not_parked():
    batch = signed([vote(), vote(), vote()])
    event, received = batch[1]
    j = judge()
    assert j.judge(event, received) is None
    auth = event.auth
    bad = [
        {"signature": auth.signature.upper()},
        {"root": auth.root.upper()},
        {"path": [auth.path[0].upper(), *auth.path[1:]]},
        {"path": [" " + auth.path[0][1:], *auth.path[1:]]},  # bytes.fromhex would skip the space
        {"signature": "zz" + auth.signature[2:]},
    ]
    for fields in bad:
        text = tampered(received, **fields)
        decoded = decode(text)  # the decoder checks lengths only
        assert j.judge(decoded, Received(text)) == validation.BAD_SIGNATURE, fields
        assert Judge.judge(judge(), decoded, Received(text)) == validation.BAD_SIGNATURE, fields  # empty caches
        assert not signing.verify(text, decoded.auth, signing.public_key_of(DESK))  # the audit's check agrees
    for fields in ({"signature": auth.signature[:-2]}, {"root": auth.root + "00"}, {"path": [auth.path[0][:-1]]}):
        with pytest.raises(MalformedMessage):
            decode(tampered(received, **fields))  # a wrong length is still parked (invalid_event)


# --- Gaps the review named -----------------------------------------------------------------------------


def test_with_duplicate_members_what_is_counted_is_what_was_signed():
    """JSON with a member twice: the canonical bytes and the decoder both keep the last one."""
    [(event, received)] = signed([vote()])
    body = received.payload[1:]
    before = '{"choices":{"2":"against"},' + body  # a duplicate before the signed one: the signed one counts
    decoded = decode(before)
    assert decoded.choices == {"2": "for"} and judge().judge(decoded, Received(before)) is None
    after = received.payload[:-1] + ',"choices":{"2":"against"}}'  # after it: counted, so not what was signed
    decoded = decode(after)
    assert decoded.choices == {"2": "against"} and judge().judge(decoded, Received(after)) == "bad_signature"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(2, 30, allow_nan=False), min_size=1, max_size=5), st.floats(0, 32, allow_nan=False))
def test_a_key_revoked_several_times_ends_at_the_earliest_revocation_in_any_order(times, when):
    j = judge()
    for t in times:
        assert j.judge(key_revoked("desk", "k1", t)) is None
    expected = validation.KEY_REVOKED if at(when) >= at(min(times)) else None
    assert one(vote(executed=when, received=when), judge=j) == expected


def test_the_signature_cache_is_right_across_meetings_whose_same_key_id_names_different_keys():
    """k1 is the desk's key DESK in m1 and OTHER in m2: a batch verified in m1 proves nothing in m2."""
    j = judge()
    assert j.judge(small_meeting(event_id="meeting-2", meeting_id="m2", signatures_required=True)) is None
    assert j.judge(register_event(meeting_id="m2")) is None
    assert j.judge(key_registered("desk", "k1", OTHER, ["internet"], meeting_id="m2")) is None
    by_desk = signed([vote(), vote(meeting_id="m2")])  # one batch, signed with DESK
    assert j.judge(*by_desk[0]) is None  # m1: DESK is k1, verified and cached
    assert j.judge(*by_desk[1]) == validation.BAD_SIGNATURE  # m2: k1 is OTHER; same root and signature
    by_other = signed([vote(), vote(meeting_id="m2")], private=OTHER)
    assert j.judge(*by_other[1]) is None and j.judge(*by_other[0]) == validation.BAD_SIGNATURE

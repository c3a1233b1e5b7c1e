"""The compact form of a logged event (events.compact): the payload's decoding without auth, read back exactly."""

from datetime import timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    COMPACT_FORMAT,
    EVENT_TYPES,
    SCHEMA_VERSION,
    ChannelAuth,
    ChannelKeyRegistered,
    ChannelKeyRevoked,
    CutoffChanged,
    ItemCorrected,
    MalformedMessage,
    MeetingAdjourned,
    MeetingCorrected,
    PollsClosed,
    ProxySubstituted,
    VoteRefused,
    VoteReinstated,
    compact_state,
    decode,
    decode_compact,
    encode,
    encode_compact,
    logged_event,
    tag_of,
)
from events.compact import ABSENT, HOLDS, MISMATCH, OTHER_FORMAT
from tests.factories import T0, at, cast, register_event, revoke, small_meeting
from tests.strategies import submissions

AUTH = ChannelAuth(channel_id="desk", key_id="k1", signature="ab" * 64, root="cd" * 32, batch_size=2, path=["ef" * 32])


def one_of_each():
    """An event of every registered type, with optional fields set where the type has them."""
    common = {"meeting_id": "m1", "recorded_at": at(1)}
    return [
        cast("R-1", {"1.1": "for", "2": {"for": 10, "against": 5}}, shares=20, signatures=["Al"], auth=AUTH),
        revoke("R-1", executed=3, auth=AUTH),
        ProxySubstituted(
            event_id="sub-1",
            meeting_id="m1",
            proxy_holder="Ann Proxy",
            substitute="Zed",
            executed_at=at(2),
            received_at=at(2.5),
            control_numbers=["R-1"],
            auth=AUTH,
        ),
        small_meeting(),
        register_event(),
        PollsClosed(event_id="close-1", closed_at=at(40), items=["2"], **common),
        ChannelKeyRegistered(
            event_id="key-1",
            channel_id="desk",
            key_id="k1",
            public_key="12" * 32,
            kinds=["in_person"],
            effective_at=T0,
            nominees=["Broker X"],
            **common,
        ),
        ChannelKeyRevoked(
            event_id="key-2", channel_id="desk", key_id="k1", effective_at=at(5), reason="lost", **common
        ),
        MeetingAdjourned(event_id="adj-1", meeting_at=at(50), effective_at=at(4), postponed=True, **common),
        CutoffChanged(event_id="cut-1", channel="mail", cutoff=None, effective_at=at(4), **common),
        MeetingCorrected(
            event_id="cor-1", effective_at=at(4), title="AGM", items=[ItemCorrected(id="2", title="Auditor")], **common
        ),
        VoteRefused(
            event_id="ledger:refused:e1",
            meeting_id="m1",
            refused_event_id="e1",
            control_number="B-1",
            nominee="Broker X",
            item="2",
            entitlement=10,
            attempted=12,
            counted=9,
        ),
        VoteReinstated(
            event_id="ledger:reinstated:ledger:refused:e1",
            meeting_id="m1",
            refused_event_id="e1",
            control_number="B-1",
            nominee="Broker X",
            item="2",
            withdrawn_event_id="ledger:refused:e1",
            cause_event_id="close-1",
        ),
    ]


def test_the_samples_cover_every_registered_event_type():
    assert sorted(tag_of(e) for e in one_of_each()) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("event", one_of_each(), ids=tag_of)
def test_every_event_type_reads_back_from_its_compact_form_as_its_payload_decodes_without_auth(event):
    decoded = decode(encode(event))
    compact = encode_compact(decoded)
    assert compact[0] == COMPACT_FORMAT
    unsigned = msgspec.structs.replace(decoded, auth=None) if hasattr(decoded, "auth") else decoded
    assert decode_compact(compact) == unsigned
    assert encode(decode_compact(compact)) == encode(unsigned)
    assert compact_state(compact, decoded) == HOLDS


def test_the_compact_form_holds_no_trace_of_the_channels_signature():
    vote = cast("R-1", {"2": "for"}, auth=AUTH)
    compact = encode_compact(vote)
    assert b"ab" * 64 not in compact and b"desk" not in compact
    assert decode_compact(compact).auth is None
    assert len(compact) < len(encode(vote)) / 2


@settings(max_examples=200, deadline=None)
@given(submissions(), st.integers(-14 * 60, 14 * 60))
def test_a_submission_keeps_every_field_and_its_utc_offset_through_the_compact_form(event, minutes):
    # MessagePack's timestamps hold UTC instants: the compact form writes RFC 3339 text so offsets survive.
    tz = timezone(timedelta(minutes=minutes))
    event = msgspec.structs.replace(
        event, executed_at=event.executed_at.astimezone(tz), received_at=event.received_at.astimezone(tz)
    )
    back = decode_compact(encode_compact(decode(encode(event))))
    assert back == event
    assert back.executed_at.utcoffset() == timedelta(minutes=minutes)
    assert encode(back) == encode(event)


def test_another_format_byte_is_refused_so_readers_decode_the_payload():
    vote = cast("R-1", {"2": "for"})
    future = bytes([COMPACT_FORMAT + 1]) + encode_compact(vote)[1:]
    with pytest.raises(MalformedMessage) as exc:
        decode_compact(future)
    assert exc.value.reason == "unsupported_compact"
    assert logged_event(future, encode(vote).decode()) == vote


def test_a_compact_form_of_another_schema_version_is_refused_so_readers_upcast_the_payload():
    vote = cast("R-1", {"2": "for"})
    older = encode_compact(msgspec.structs.replace(vote, v=SCHEMA_VERSION + 1))
    with pytest.raises(MalformedMessage, match="schema v2"):
        decode_compact(older)
    assert logged_event(older, encode(vote)) == vote


def test_a_schema_version_change_must_bump_the_compact_format():
    # Readers select a row's payload only when its format byte is not COMPACT_FORMAT (reads.EVENT_COLUMNS):
    # a new SCHEMA_VERSION with the same format byte would leave them rows with neither form readable.
    assert (SCHEMA_VERSION, COMPACT_FORMAT) == (1, 1)


def test_a_row_without_a_compact_form_is_read_from_its_payload_and_garbage_is_malformed():
    vote = cast("R-1", {"2": "for"})
    assert logged_event(None, encode(vote).decode()) == vote
    assert compact_state(None, vote) == ABSENT
    for garbage in (b"", bytes([COMPACT_FORMAT]), bytes([COMPACT_FORMAT]) + b"\xc1"):
        with pytest.raises(MalformedMessage):
            decode_compact(garbage)
    with pytest.raises(MalformedMessage):
        logged_event(bytes([COMPACT_FORMAT]) + b"\xc1", None)
    with pytest.raises(MalformedMessage):
        logged_event(None, None)


def test_a_compact_form_of_another_event_does_not_hold():
    vote = cast("R-1", {"2": "for"})
    other = msgspec.structs.replace(vote, choices={"2": "against"})
    assert compact_state(encode_compact(other), vote) == MISMATCH
    assert compact_state(memoryview(encode_compact(vote)), vote) == HOLDS
    assert compact_state(encode_compact(vote), msgspec.structs.replace(vote, auth=AUTH)) == HOLDS  # auth is not in it


def test_a_compact_form_of_another_format_is_counted_like_none_not_a_mismatch():
    # Readers fold such a row from its payload (reads.EVENT_COLUMNS), as README and the wire contract say: the
    # first COMPACT_FORMAT bump must not turn every older row into a compact_mismatch.
    vote = cast("R-1", {"2": "for"})
    older = bytes([COMPACT_FORMAT + 1]) + encode_compact(vote)[1:]
    assert compact_state(older, vote) == OTHER_FORMAT
    assert compact_state(bytes([COMPACT_FORMAT + 1]) + b"\xc1", vote) == OTHER_FORMAT  # whatever its layout


def test_a_compact_form_written_before_a_field_with_a_default_was_added_still_holds():
    # A field with a default may be added without a version bump: the old row's bytes lack it, yet it decodes
    # (with the default) to the event its payload decodes to.
    vote = cast("R-1", {"2": "for"})
    fields = msgspec.msgpack.decode(encode_compact(vote)[1:])
    del fields["legal_proxy_id"], fields["discretionary"]
    written_before = bytes([COMPACT_FORMAT]) + msgspec.msgpack.encode(fields)
    assert written_before != encode_compact(vote)
    assert compact_state(written_before, vote) == HOLDS
    assert compact_state(written_before, msgspec.structs.replace(vote, discretionary=True)) == MISMATCH


def test_a_compact_form_of_our_format_that_cannot_be_decoded_is_a_mismatch():
    vote = cast("R-1", {"2": "for"})
    unreadable = [
        b"",
        bytes([COMPACT_FORMAT]),
        bytes([COMPACT_FORMAT]) + b"\xc1",
        encode_compact(msgspec.structs.replace(vote, v=SCHEMA_VERSION + 1)),  # readers get no payload for it
    ]
    for compact in unreadable:
        assert compact_state(compact, vote) == MISMATCH, compact


def test_a_compact_form_whose_times_differ_only_in_their_utc_offset_is_a_mismatch():
    vote = cast("R-1", {"2": "for"})
    shifted = msgspec.structs.replace(vote, executed_at=vote.executed_at.astimezone(timezone(timedelta(hours=2))))
    assert shifted == vote  # a datetime's == compares instants only
    assert compact_state(encode_compact(shifted), vote) == MISMATCH


def test_a_compact_form_holding_a_string_that_is_not_utf8_is_malformed_not_a_crash():
    """msgspec raises UnicodeDecodeError for such a string: a forged form must fall back, not end a fold."""
    form = bytes([COMPACT_FORMAT]) + msgspec.msgpack.encode({"type": "vote.cast"}).replace(
        b"vote.cast", b"vote\xfdcast"
    )
    with pytest.raises(MalformedMessage):
        decode_compact(form)

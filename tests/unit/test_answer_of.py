"""Answers to channels built from log rows and parked messages; a parked message's ids read leniently."""

import hashlib
import json

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from events.answers import ANSWER_TYPES, SubmissionParked
from services.runtime import answer_of
from services.runtime.answers_cursor import cursor_header, read_cursor

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "event_id": _json | st.text(),
        "control_number": _json | st.text(),
        "meeting_id": _json | st.text(),
        "auth": _json | st.fixed_dictionaries({}, optional={"channel_id": _json | st.text()}),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), _fields.map(lambda d: json.dumps(d).encode()), st.none()))
def test_reading_the_ids_of_any_bytes_never_raises_and_gives_only_ids_an_answer_can_carry(value):
    ids = answer_of.read_ids(value)
    for text in (ids.event_id, ids.control_number, ids.meeting_id, ids.channel_id):
        assert text is None or (isinstance(text, str) and 1 <= len(text) <= 200)
        if text is not None:
            text.encode("utf-8")  # no lone surrogate: the answer can be encoded
    answer, key = answer_of.parked(
        {
            "value": value,
            "id": 1,
            "reason": "undecodable",
            "detail": "d",
            "source_topic": "votes.submissions",
            "source_partition": 0,
            "source_offset": 5,
        }
    )
    decoded = msgspec.json.decode(msgspec.json.encode(answer), type=ANSWER_TYPES["submission.parked"])
    assert decoded == answer and (key is None or isinstance(key, bytes))


def test_nesting_past_any_limit_and_lone_surrogates_read_as_no_id():
    assert answer_of.read_ids(b"[" * 100_000) == answer_of.ReadIds()
    assert (
        answer_of.read_ids(b'{"event_id": "\\ud800", "meeting_id": "m"}') == answer_of.ReadIds()
    )  # msgspec refuses it
    assert answer_of.read_ids(b'{"event_id": "' + b"x" * 201 + b'", "meeting_id": "m"}') == answer_of.ReadIds(
        meeting_id="m"
    )


def test_a_parked_message_with_a_readable_id_is_answered_under_it_and_keyed_by_its_control_number():
    value = b'{"type": "vote.cast", "event_id": "web:1", "control_number": "R-1", "auth": {"channel_id": "web"}, "v": 9'
    answer, key = answer_of.parked(
        {
            "value": value,
            "id": 7,
            "reason": "undecodable",
            "detail": "truncated",
            "source_topic": "votes.submissions",
            "source_partition": 2,
            "source_offset": 40,
        }
    )
    assert answer == SubmissionParked(
        event_id=None,  # not JSON: nothing read (a lenient reader, not a guessing one)
        reason="undecodable",
        detail="truncated",
        parked_id=7,
        source_topic="votes.submissions",
        source_partition=2,
        source_offset=40,
        payload_sha256=hashlib.sha256(value).hexdigest(),  # the bytes as received, whatever they hold
    )
    assert key is None
    answer, key = answer_of.parked(
        {
            "value": value + b"}",
            "id": 7,
            "reason": "unsupported_version",
            "detail": "v 9",
            "source_topic": "votes.submissions",
            "source_partition": 2,
            "source_offset": 40,
        }
    )
    assert (answer.event_id, answer.channel_id, key) == ("web:1", "web", b"R-1")


def test_a_channel_id_outside_the_wire_pattern_is_not_repeated():
    assert answer_of.read_ids(b'{"auth": {"channel_id": "Web Platform"}}').channel_id is None


def test_the_cursor_header_reads_back_and_a_malformed_one_reads_as_none():
    name, value = cursor_header(12, 3)
    assert read_cursor([(name.encode(), value)]) == (12, 3)
    for bad in (b"12", b"x 3", b"-1 2", b"\xff", None):
        assert read_cursor([(name.encode(), bad)]) is None
    assert read_cursor([(b"other", b"1 2")]) is None

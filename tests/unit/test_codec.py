"""The wire codec: round trips, the documented example, precise errors for malformed input."""

import msgspec
import pytest

from events import UPCASTERS, MalformedMessage, VoteCast, decode, encode
from tests.factories import cast, register_event, revoke, small_meeting

DOMAIN_EXAMPLE = (
    b'{"type": "vote.cast", "v": 1, "event_id": "0b9e", "meeting_id": "cbak-2023-agm",'
    b' "control_number": "4417-2210-8093-1155", "channel": "internet", "submitted_by": "proxyvote-web",'
    b' "executed_at": "2023-11-30T14:05:00+08:00", "received_at": "2023-11-30T14:05:01+08:00",'
    b' "shares": null, "choices": {"1.1": "for", "1.2": "against", "2": {"for": 600, "against": 400}, "5": "3y"},'
    b' "signatures": null, "discretionary": false, "legal_proxy_id": null}'
)


def test_the_domain_briefs_example_decodes_to_a_vote_cast():
    event = decode(DOMAIN_EXAMPLE)
    assert isinstance(event, VoteCast)
    assert event.choices["2"] == {"for": 600, "against": 400}
    assert event.executed_at.utcoffset().total_seconds() == 8 * 3600


@pytest.mark.parametrize(
    "event",
    [
        cast("R-1", {"1.1": "for", "2": {"for": 10, "against": 5}}, shares=20, signatures=["Alice"]),
        revoke("R-1", executed=3),
        small_meeting(),
        register_event(),
    ],
)
def test_every_event_survives_an_encode_decode_round_trip(event):
    assert decode(encode(event)) == event


def test_encoding_is_canonical_so_equal_events_have_equal_bytes():
    event = decode(DOMAIN_EXAMPLE)
    assert encode(decode(encode(event))) == encode(event)


def test_unknown_optional_fields_from_newer_clients_are_ignored():
    data = DOMAIN_EXAMPLE[:-1] + b', "new_field": 1}'
    assert decode(data).event_id == "0b9e"


@pytest.mark.parametrize(
    "data, reason, where",
    [
        (b"{", "invalid_json", "truncated"),
        (b"\xff\xfe", "invalid_utf8", "byte 0"),
        # msgspec skips unknown fields without checking their UTF-8; the payload must still be text.
        (DOMAIN_EXAMPLE[:-1] + b', "note": "\xff"}', "invalid_utf8", "not UTF-8"),
        (DOMAIN_EXAMPLE[:-1] + b', "note": ' + b"[" * 1000 + b"]" * 1000 + b"}", "invalid_json", "nested too deeply"),
        (b'{"type": "vote.cast", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "invalid_json", "nested too deeply"),
        (DOMAIN_EXAMPLE[:-1] + b', "note": NaN}', "invalid_json", ""),
        (b"[]", "invalid_event", "object"),
        (b'{"type": "vote.cast", "v": 1}', "invalid_event", "missing required field"),
        (b'{"type": "vote.exploded", "v": 1}', "invalid_event", "$.type"),
        (b'{"type": "vote.cast", "v": 2}', "unsupported_version", "v2"),
        (b'{"type": "vote.cast", "v": "1"}', "invalid_version", "`v`"),
        (DOMAIN_EXAMPLE.replace(b'+08:00", "received', b'", "received'), "invalid_event", "$.executed_at"),
        (DOMAIN_EXAMPLE.replace(b'"for": 600', b'"for": -600'), "invalid_event", "$.choices"),
        (DOMAIN_EXAMPLE.replace(b'"internet"', b'"pigeon"'), "invalid_event", "$.channel"),
    ],
)
def test_a_malformed_message_raises_a_precise_error_never_a_crash(data, reason, where):
    with pytest.raises(MalformedMessage) as caught:
        decode(data)
    assert caught.value.reason == reason
    assert where in caught.value.detail


def test_an_older_version_is_upcast_through_a_named_upcaster(monkeypatch):
    def v0_to_v1(raw):
        raw["control_number"] = raw.pop("control")
        return raw

    monkeypatch.setitem(UPCASTERS, ("vote.revoked", 0), v0_to_v1)
    old = msgspec.json.decode(encode(revoke("R-1", executed=2)))
    old["v"] = 0
    old["control"] = old.pop("control_number")
    event = decode(msgspec.json.encode(old))
    assert event.control_number == "R-1" and event.v == 1


@pytest.mark.parametrize(
    "old, new, where",
    [
        (b'"0b9e"', b'"p\\u0000x"', "NUL"),
        (b'"2023-11-30T14:05:00+08:00"', b'"0001-01-01T00:00:00+14:00"', "executed_at"),
        (b'"2023-11-30T14:05:01+08:00"', b'"9999-12-31T23:59:59-14:00"', "received_at"),
    ],
)
def test_values_postgresql_cannot_store_are_malformed_not_a_stalled_batch(old, new, where):
    with pytest.raises(MalformedMessage) as caught:
        decode(DOMAIN_EXAMPLE.replace(old, new))
    assert caught.value.reason == "invalid_event" and where in caught.value.detail


_KEY_REGISTERED = (
    '{"type":"channel.key_registered","v":1,"event_id":"e","meeting_id":"m","channel_id":%s,"key_id":"k",'
    '"public_key":%s,"kinds":["internet"],"effective_at":"2023-01-01T00:00:00Z"}'
)


@pytest.mark.parametrize(
    ("channel_id", "public_key"),
    [('"desk\\n"', '"' + "a" * 64 + '"'), ('"desk"', '"' + "a" * 64 + '\\n"')],
)
def test_a_trailing_newline_is_no_part_of_a_channel_id_or_a_hex_key(channel_id, public_key):
    # Python's `$` matches before a final newline: without the lookahead both decoded.
    with pytest.raises(MalformedMessage) as err:
        decode((_KEY_REGISTERED % (channel_id, public_key)).encode())
    assert err.value.reason == "invalid_event"


def test_a_message_without_v_and_a_wrong_field_is_an_invalid_event_naming_the_field():
    # `v` defaults to 1: an absent one is the current version, not an unreadable one.
    text = (_KEY_REGISTERED % ('"Desk"', '"' + "a" * 64 + '"')).replace('"v":1,', "")
    with pytest.raises(MalformedMessage) as err:
        decode(text.encode())
    assert err.value.reason == "invalid_event"
    assert "channel_id" in err.value.detail

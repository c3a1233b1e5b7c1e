"""`vote-ledger channel`: keygen's key file, the submissions file, the key listing's fold, one-line errors (no I/O)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from events import ChannelKeyRegistered, ChannelKeyRevoked, encode
from services.channel.keys import load_key
from services.cli import main
from services.cli.channel_keys_cmd import keys_of
from services.cli.channel_submit_cmd import SUBMISSIONS_MAX, read_submissions
from services.errors import UserError

T = datetime(2023, 10, 1, tzinfo=UTC)
VOTE = {
    "type": "vote.cast",
    "v": 1,
    "event_id": "v1",
    "meeting_id": "m1",
    "control_number": "R-1",
    "channel": "internet",
    "submitted_by": "acme-web",
    "executed_at": "2023-12-01T10:00:00+08:00",
    "received_at": "2023-12-01T10:00:01+08:00",
    "choices": {"2": "for"},
}


def test_keygen_writes_a_0600_key_file_and_prints_the_public_key_it_holds(tmp_path, capsys):
    out = tmp_path / "web.key.json"
    assert (
        main(["channel", "keygen", "--channel-id", "acme-web", "--key-id", "2023-11", "--out", str(out), "--json"]) == 0
    )
    printed = json.loads(capsys.readouterr().out)
    key = load_key(out)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert printed == {
        "channel_id": "acme-web",
        "key_id": "2023-11",
        "public_key": key.public_key,
        "key_file": str(out),
    }


def test_keygen_refuses_to_overwrite_a_key_file_in_one_line(tmp_path, capsys):
    out = tmp_path / "web.key.json"
    out.write_text("precious")
    assert main(["channel", "keygen", "--channel-id", "acme-web", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"vote-ledger: {out} exists: a key file is never overwritten\n"
    assert out.read_text() == "precious"


def test_the_default_key_id_is_a_fingerprint_of_the_public_key(tmp_path, capsys):
    import hashlib

    out = tmp_path / "web.key.json"
    main(["channel", "keygen", "--channel-id", "acme-web", "--out", str(out)])
    key = load_key(out)
    assert key.key_id == hashlib.sha256(bytes.fromhex(key.public_key)).hexdigest()[:16]


def test_submissions_are_read_from_a_json_array_or_one_object_per_line(tmp_path):
    second = {**VOTE, "event_id": "v2", "control_number": "R-2"}
    array, lines = tmp_path / "a.json", tmp_path / "l.json"
    array.write_text(json.dumps([VOTE, second], indent=2))
    lines.write_text(json.dumps(VOTE) + "\n\n" + json.dumps(second) + "\n")
    assert [e.event_id for e in read_submissions(str(array))] == ["v1", "v2"]
    assert read_submissions(str(lines)) == read_submissions(str(array))


@pytest.mark.parametrize(
    "content, error",
    [
        (json.dumps({**VOTE, "channel": "fax"}), "line 1: invalid_event"),
        (json.dumps(VOTE) + "\n" + '{"type": "polls.closed"', "line 2: invalid_json"),
        (json.dumps([{**VOTE, "executed_at": "2023-12-01T10:00:00"}]), "item 0: invalid_event"),
        ("", "no submission in it"),
    ],
)
def test_a_submissions_file_that_is_not_submissions_is_refused_naming_where(tmp_path, content, error):
    path = tmp_path / "votes.json"
    path.write_text(content)
    with pytest.raises(UserError, match=error):
        read_submissions(str(path))


def test_a_submissions_file_that_is_a_device_a_fifo_or_over_the_cap_is_refused_unread(tmp_path, capsys):
    fifo = tmp_path / "votes.fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as f:
        f.truncate(SUBMISSIONS_MAX + 1)  # sparse: the cap is checked on what is read, not the whole file
    for path, error in ((fifo, "not a regular file"), ("/dev/zero", "not a regular file"), (big, "over 16,777,216")):
        with pytest.raises(UserError, match=error):
            read_submissions(str(path))
    key = tmp_path / "k.json"
    main(["channel", "keygen", "--channel-id", "acme-web", "--out", str(key)])
    capsys.readouterr()
    assert main(["channel", "submit", "/dev/zero", "--key-file", str(key)]) == 2
    err = capsys.readouterr().err
    assert err == "vote-ledger: /dev/zero: not a regular file: a submissions file is one\n"


def test_a_directory_given_as_the_submissions_file_or_the_key_file_is_refused_in_one_line(tmp_path, capsys):
    key = tmp_path / "k.json"
    main(["channel", "keygen", "--channel-id", "acme-web", "--out", str(key)])
    votes = tmp_path / "votes.jsonl"
    votes.write_text(json.dumps(VOTE) + "\n")
    capsys.readouterr()
    assert main(["channel", "submit", str(tmp_path), "--key-file", str(key)]) == 2
    assert capsys.readouterr().err == f"vote-ledger: {tmp_path}: not a regular file: a submissions file is one\n"
    with pytest.raises(ValueError, match="not a regular file: a key file is one"):
        load_key(tmp_path)
    assert main(["channel", "submit", str(votes), "--key-file", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path}: not a regular file: a key file is one" in err, err


def test_an_admin_event_in_a_submissions_file_is_refused(tmp_path):
    path = tmp_path / "votes.json"
    path.write_text(
        json.dumps({"type": "polls.closed", "event_id": "p", "meeting_id": "m1", "closed_at": "2023-12-15T09:45:00Z"})
    )
    with pytest.raises(UserError, match="item|line 1: polls.closed is not a submission"):
        read_submissions(str(path))


def registration(key_id: str, at: datetime = T, **fields) -> ChannelKeyRegistered:
    return ChannelKeyRegistered(
        event_id=f"r-{key_id}",
        meeting_id="m1",
        channel_id="acme-web",
        key_id=key_id,
        public_key="ab" * 32,
        kinds=["internet"],
        effective_at=at,
        **fields,
    )


def test_the_listing_shows_each_key_with_its_scope_and_its_earliest_revocation():
    revoked_late = ChannelKeyRevoked(
        event_id="x1", meeting_id="m1", channel_id="acme-web", key_id="k1", effective_at=T + timedelta(days=9)
    )
    revoked_early = ChannelKeyRevoked(
        event_id="x2", meeting_id="m1", channel_id="acme-web", key_id="k1", effective_at=T + timedelta(days=2)
    )
    unknown = ChannelKeyRevoked(event_id="x3", meeting_id="m1", channel_id="other", key_id="k9", effective_at=T)
    events = [registration("k1"), registration("k2", nominees=["Broker X"]), revoked_late, revoked_early, unknown]
    rows = [{"position": n, "payload": encode(e).decode()} for n, e in enumerate(events, 1)]
    keys = keys_of(rows)
    assert [(k["key_id"], k["nominees"]) for k in keys] == [("k1", None), ("k2", ["Broker X"])]
    assert keys[0]["revoked"] == {"effective_at": T + timedelta(days=2), "reason": None, "position": 4}
    assert keys[1]["revoked"] is None and keys[1]["registered_at_position"] == 2


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--public-key", "ab" * 32, "--kinds", "internet"], "--public-key needs --channel-id and --key-id"),
        (
            ["--public-key", "ab" * 32, "--channel-id", "Acme", "--key-id", "k", "--kinds", "internet"],
            "not a valid ChannelKeyRegistered",
        ),
        (["--public-key", "xyz", "--channel-id", "acme", "--key-id", "k", "--kinds", "internet"], "public_key"),
    ],
)
def test_a_registration_the_wire_schema_would_refuse_is_one_line_before_kafka(argv, error, capsys):
    assert main(["channel", "register", "--meeting", "m1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vote-ledger: ") and error in err and err.count("\n") == 1


def test_unknown_channel_kinds_are_refused_as_they_are_parsed(capsys):
    with pytest.raises(SystemExit):
        main(["channel", "register", "--meeting", "m1", "--key-file", "k.json", "--kinds", "internet,fax"])
    assert "--kinds: one or more of internet, phone, mail, in_person, broker" in capsys.readouterr().err


def test_registering_a_public_demo_key_or_a_broker_key_for_every_position_is_warned_of():
    from services.cli.channel_admin_cmd import registration_warnings
    from services.devtools.demo.channels import demo_key

    demo = msgspec.structs.replace(
        registration("demo-1"),
        channel_id="broker-a",
        public_key=demo_key("m1", "broker-a").public_key,
        kinds=["broker"],
    )
    assert registration_warnings(demo) == [
        "broker-a/demo-1 is the simulated channel's PUBLIC demo key: anyone can sign with it",
        "broker-a/demo-1 may vote every position as broker, registered holders' too (S4): "
        "give --nominees to limit it to those nominees' beneficial positions",
    ]
    scoped = msgspec.structs.replace(demo, public_key="ab" * 32, nominees=["Broker A"])
    assert registration_warnings(scoped) == []


def test_a_simulated_channels_demo_key_registered_under_another_channel_id_is_warned_of_and_marked():
    from services.cli.channel_admin_cmd import registration_warnings
    from services.cli.channel_keys_cmd import mark_demo_keys
    from services.devtools.demo.channels import demo_key

    web = demo_key("m1", "proxyvote-web").public_key  # a default submitter's simulated channel
    broker = demo_key("m1", "broker-a").public_key  # the simulated broker of nominee "Broker A"
    as_acme = msgspec.structs.replace(registration("k1"), public_key=web)
    assert registration_warnings(as_acme) == [
        "acme-web/k1 is the PUBLIC demo key of the simulated channel proxyvote-web: anyone can sign with it"
    ]
    as_other = msgspec.structs.replace(registration("k2"), public_key=broker)
    assert registration_warnings(as_other) == []  # the nominee is not known: no broker id to derive
    assert registration_warnings(as_other, nominees={"Broker A"}) == [
        "acme-web/k2 is the PUBLIC demo key of the simulated channel broker-a: anyone can sign with it"
    ]
    assert registration_warnings(msgspec.structs.replace(as_acme, meeting_id="m2")) == []  # keys are per meeting
    rows = [
        {"position": n, "payload": encode(e).decode()} for n, e in enumerate([as_acme, as_other, registration("k3")])
    ]
    keys = keys_of(rows)
    mark_demo_keys("m1", keys, {"Broker A"})
    assert [(k["key_id"], k["demo_key_of"], k["public_demo_key"]) for k in keys] == [
        ("k1", "proxyvote-web", True),
        ("k2", "broker-a", True),
        ("k3", None, False),
    ]

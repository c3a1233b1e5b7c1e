"""The channel client's pure side: key files, event-id namespaces (S6) and batch signing that verifies (no I/O)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from events import ProxySubstituted, VoteCast, decode
from events.answers import SubmissionDecided, SubmissionParked
from projections.signing import verify
from services.channel.client import EVENT_ID_MAX, ChannelClient, namespaced, sign, sign_per_channel
from services.channel.keys import KEY_FILE_MAX, SigningKey, load_key, new_key, write_key
from services.devtools.contract_asyncapi import doc_examples
from services.settings import Settings

T = datetime(2023, 11, 30, 6, 5, tzinfo=UTC)
WIRE_CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "wire-contract.md"


def vote(n: int, channel: str = "internet") -> VoteCast:
    return VoteCast(
        event_id=f"e-{n}",
        meeting_id="m1",
        control_number=f"C-{n}",
        channel=channel,
        submitted_by="proxyvote-web",
        executed_at=T,
        received_at=T,
        choices={"1": "for"},
    )


def test_a_key_file_round_trips_and_is_readable_by_its_owner_only(tmp_path):
    key = new_key("proxyvote-web", "2023-10")
    path = tmp_path / "web.key.json"
    write_key(path, key)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(path) == key
    written = json.loads(path.read_text())
    assert written["public_key"] == key.public_key and written["private_key"] == key.private_key


def test_writing_a_key_file_never_overwrites_an_existing_one(tmp_path):
    path = tmp_path / "web.key.json"
    write_key(path, new_key("proxyvote-web", "k1"))
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_key(path, new_key("proxyvote-web", "k2"))
    assert path.read_bytes() == before


def test_a_key_file_whose_public_key_does_not_match_its_private_key_is_refused(tmp_path):
    path = tmp_path / "web.key.json"
    write_key(path, new_key("proxyvote-web", "k1"))
    data = json.loads(path.read_text())
    data["public_key"] = new_key("proxyvote-web", "k1").public_key
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="altered"):
        load_key(path)


@pytest.mark.parametrize(
    "content, error",
    [
        ("not json", "not a channel key file"),
        ('{"channel_id": "Web", "key_id": "k", "private_key": "' + "ab" * 32 + '"}', "channel id 'Web'"),
        ('{"channel_id": "web", "key_id": "k", "private_key": "abc"}', "private key: 64 lowercase hex"),
    ],
)
def test_a_malformed_key_file_is_refused_naming_the_file(tmp_path, content, error):
    path = tmp_path / "bad.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(ValueError, match=error) as refused:
        load_key(path)
    assert str(path) in str(refused.value)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_key_file_others_may_read_is_refused_as_an_unprotected_private_key_file(tmp_path, mode):
    path = tmp_path / "web.key.json"
    write_key(path, new_key("proxyvote-web", "k1"))
    path.chmod(mode)
    with pytest.raises(ValueError, match=f"unprotected private key file: permissions {mode:04o}") as refused:
        load_key(path)
    assert str(refused.value).count("\n") == 0


def test_a_fifo_or_a_device_is_refused_as_a_key_file_without_blocking(tmp_path):
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo, 0o600)
    for path in (fifo, "/dev/zero"):
        with pytest.raises(ValueError, match="not a regular file"):
            load_key(path)


def test_a_key_file_too_large_to_be_one_is_refused_unread(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (KEY_FILE_MAX + 1))
    path.chmod(0o600)
    with pytest.raises(ValueError, match="too large for a key file"):
        load_key(path)


def test_a_channel_key_does_not_show_its_private_key_in_its_repr():
    key = new_key("proxyvote-web", "k1")
    assert key.private_key not in repr(key)


def test_event_ids_are_namespaced_by_the_channel_once():
    named = namespaced(vote(1), "proxyvote-web")
    assert named.event_id == "proxyvote-web:e-1"
    assert namespaced(named, "proxyvote-web") is named
    # Another channel's prefix is not ours: it is namespaced again, so S6 holds.
    assert namespaced(named, "proxyvote-ivr").event_id == "proxyvote-ivr:proxyvote-web:e-1"


def test_an_event_id_too_long_once_namespaced_is_refused_before_signing():
    long = msgspec.structs.replace(vote(1), event_id="x" * (EVENT_ID_MAX - 5))
    with pytest.raises(ValueError, match="over 200 characters"):
        namespaced(long, "proxyvote-web")


def test_a_batch_signed_by_the_client_verifies_submission_by_submission():
    key = new_key("proxyvote-web", "k1")
    signed = sign([vote(n) for n in range(5)], key)
    assert [s.event_id for s in signed] == [f"proxyvote-web:e-{n}" for n in range(5)]
    for index, item in enumerate(signed):
        event = decode(item.payload)
        assert event.event_id == item.event_id and item.key == event.control_number.encode()
        assert (event.auth.channel_id, event.auth.key_id) == ("proxyvote-web", "k1")
        assert (event.auth.batch_size, event.auth.leaf_index, len(event.auth.path)) == (5, index, 3 if index < 4 else 1)
        assert verify(item.payload, event.auth, key.public_key)
        assert not verify(item.payload, event.auth, new_key("proxyvote-web", "k1").public_key)
    tampered = signed[2].payload.replace(b'"for"', b'"against"')
    assert not verify(tampered, decode(tampered).auth, key.public_key)


def test_signing_is_deterministic_so_a_retry_resends_the_same_bytes():
    key = new_key("proxyvote-web", "k1")
    events = [vote(n) for n in range(3)]
    assert sign(events, key) == sign(events, key)


def test_large_submissions_are_signed_in_batches_of_at_most_batch_max():
    key = new_key("proxyvote-web", "k1")
    signed = sign([vote(n) for n in range(7)], key, batch_max=3)
    sizes = [decode(s.payload).auth.batch_size for s in signed]
    roots = [decode(s.payload).auth.root for s in signed]
    assert sizes == [3, 3, 3, 3, 3, 3, 1] and len(set(roots)) == 3
    assert all(verify(s.payload, decode(s.payload).auth, key.public_key) for s in signed)


def test_the_same_event_id_twice_in_one_signing_is_refused():
    with pytest.raises(ValueError, match="twice"):
        sign([vote(1), vote(1)], new_key("proxyvote-web", "k1"))


def test_signing_per_channel_keeps_the_order_and_signs_each_channels_share_as_one_batch():
    keys = {"internet": new_key("proxyvote-web", "w1"), "phone": new_key("proxyvote-ivr", "i1")}
    events = [vote(0), vote(1, "phone"), vote(2), vote(3, "phone"), vote(4)]
    signed = sign_per_channel(events, lambda e: keys[e.channel])
    assert [s.event_id for s in signed] == [
        "proxyvote-web:e-0",
        "proxyvote-ivr:e-1",
        "proxyvote-web:e-2",
        "proxyvote-ivr:e-3",
        "proxyvote-web:e-4",
    ]
    for item, event in zip(signed, events, strict=True):
        auth = decode(item.payload).auth
        assert auth.batch_size == (3 if event.channel == "internet" else 2)
        assert verify(item.payload, auth, keys[event.channel].public_key)


def test_a_substitution_is_keyed_by_its_meeting_id():
    sub = ProxySubstituted(
        event_id="s1", meeting_id="m1", proxy_holder="A", substitute="B", executed_at=T, received_at=T
    )
    (signed,) = sign([sub], new_key("corporate-secretary", "k1"))
    assert signed.key == b"m1" and signed.event_id == "corporate-secretary:s1"


def test_the_wire_contracts_signed_example_verifies_with_its_registered_key():
    examples = doc_examples(WIRE_CONTRACT.read_text(encoding="utf-8"))
    event = decode(examples["vote.cast"].encode())
    registered = decode(examples["channel.key_registered"].encode())
    assert event.auth.channel_id == registered.channel_id and event.auth.key_id == registered.key_id
    assert event.event_id.startswith(f"{registered.channel_id}:")
    assert verify(examples["vote.cast"], event.auth, registered.public_key)
    # The seed the contract documents (SHA-256 of a published phrase) is the example's private key.
    seed = hashlib.sha256(b"vote-ledger wire-contract example key (public: never use it)").hexdigest()
    assert SigningKey("proxyvote-web", "2023-10", seed).public_key == registered.public_key


def test_the_client_takes_only_the_answer_to_its_own_bytes_not_anothers_under_its_event_id():
    (mine,) = sign([vote(42)], new_key("desk", "k1"))
    client = ChannelClient(Settings(kafka_bootstrap="localhost:1"))
    client.expect(mine)
    other = hashlib.sha256(b"someone else's message under desk:e-42").hexdigest()
    decided = {"event_id": mine.event_id, "channel_id": "desk", "meeting_id": "m1", "position": 1, "hash": "00" * 32}
    # Anyone able to publish: an undecodable message, a forged signature naming our channel, an
    # answer without a digest (no value), each answered under our id; then the answer to our bytes.
    forged = [
        SubmissionParked(
            event_id=mine.event_id,
            payload_sha256=other,
            reason="invalid_event",
            detail="x",
            parked_id=7,
            source_topic="votes.submissions",
            source_partition=1,
            source_offset=99,
        ),
        SubmissionDecided(**decided, payload_sha256=other, decision="rejected", reason="bad_signature"),
        SubmissionDecided(**decided, payload_sha256=None, decision="rejected", reason="signature_required"),
    ]
    genuine = SubmissionDecided(**decided | {"position": 9}, payload_sha256=mine.digest, decision="accepted")
    for answer in [*forged, genuine, *forged]:
        client.take(msgspec.json.encode(answer))
    assert client._answers == {mine.event_id: genuine}
    assert mine.digest == hashlib.sha256(mine.payload).hexdigest()

"""A channel through the real broker and ledger (issue 11): the client signs, publishes and awaits each answer.

An unsigned, a forged, an out-of-scope and a revoked-key submission are each rejected with their reason
code and logged; a signed batch is accepted; each gets exactly one answer on votes.decisions, which the
channel client awaits; a retry republishes the same bytes and changes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import asyncpg
import pytest

from events import ChannelKeyRegistered, ChannelKeyRevoked, encode
from projections.signing import sign_batch
from services.adapters.kafka.topics import key_for, producer, publish
from services.channel.client import ANSWERS_FROM_START, ChannelClient, Signed, sign
from services.channel.keys import SigningKey, load_key, new_key
from tests.factories import T0, cast, register_event, small_meeting
from tests.integration.helpers import run_cli, running_ledger, wait_for
from tests.integration.test_answers import read_answers

pytestmark = pytest.mark.integration

WEB, OLD_WEB = new_key("web", "k1"), new_key("web", "k0")
BROKER = new_key("broker-x", "k1")


def registered(key: SigningKey, kinds: list[str], nominees: list[str] | None = None) -> ChannelKeyRegistered:
    """The meeting administration's registration of a key, valid from a day before voting opens."""
    return ChannelKeyRegistered(
        event_id=f"key-{key.channel_id}-{key.key_id}",
        meeting_id="m1",
        channel_id=key.channel_id,
        key_id=key.key_id,
        public_key=key.public_key,
        kinds=kinds,
        effective_at=T0 - timedelta(days=1),
        nominees=nominees,
    )


def admin_events() -> list:
    """A meeting requiring signatures, its register, three keys and the revocation of one of them."""
    revoked = ChannelKeyRevoked(
        event_id="key-web-k0-revoked", meeting_id="m1", channel_id="web", key_id="k0", effective_at=T0, reason="lost"
    )
    return [
        small_meeting(signatures_required=True),
        register_event(),
        registered(WEB, ["internet"]),
        registered(OLD_WEB, ["internet"]),
        registered(BROKER, ["broker"], nominees=["Broker X"]),
        revoked,
    ]


def unsigned(event) -> Signed:
    """A submission published without auth, as a channel that never signed would."""
    return Signed(event.event_id, key_for(event), encode(event))


async def test_unsigned_forged_out_of_scope_and_revoked_submissions_are_rejected_and_a_signed_batch_accepted(settings):
    batch = sign([cast("R-1", {"2": "for"}), cast("R-2", {"2": "against"}), cast("R-1", {"3": "for"}, executed=2)], WEB)
    brokers = sign(
        [cast("B-1", {"2": "for"}, channel="broker"), cast("B-2", {"3": "abstain"}, channel="broker")], BROKER
    )
    forger = SigningKey("web", "k1", new_key("web", "k1").private_key)  # claims web's key id, signs with another key
    rejected = {
        "signature_required": unsigned(cast("R-1", {"2": "against"}, event_id="web:unsigned-1")),
        "bad_signature": sign([cast("R-1", {"2": "against"})], forger)[0],
        "out_of_scope": sign([cast("R-1", {"2": "against"}, channel="broker")], BROKER)[0],
        "key_revoked": sign([cast("R-2", {"2": "for"})], OLD_WEB)[0],
    }
    everything = [*batch, *brokers, *rejected.values()]
    async with running_ledger(settings), producer(settings, "admin") as admin:
        await publish(admin, settings, admin_events())
        async with ChannelClient(settings, "channel") as client:
            answers = await client.submit(everything, timeout=60)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(admin_events()) + len(everything))

        # A retry: the same bytes again, from a new client reading the answers topic from its start.
        async with ChannelClient(settings, "channel", answers_from=ANSWERS_FROM_START) as client:
            again = await client.submit([*batch, rejected["bad_signature"]], timeout=60)
        assert again == {s.event_id: answers[s.event_id] for s in [*batch, rejected["bad_signature"]]}
        on_topic = await read_answers(settings)

    # Every submission was answered, and what the client awaited is what the log holds.
    assert set(answers) == {s.event_id for s in everything}
    conn = await asyncpg.connect(settings.pg_dsn)
    rows = {
        r["event_id"]: r for r in await conn.fetch("SELECT event_id, position, decision, reason, hash FROM ledger_log")
    }
    await conn.close()
    assert len(rows) == len(admin_events()) + len(everything)  # the retry logged nothing (R18)
    for event_id, answer in answers.items():
        row = rows[event_id]
        assert (answer.decision, answer.reason, answer.position, answer.hash) == (
            row["decision"],
            row["reason"],
            row["position"],
            bytes(row["hash"]).hex(),
        )
    assert {s.event_id: answers[s.event_id].decision for s in [*batch, *brokers]} == dict.fromkeys(
        [s.event_id for s in [*batch, *brokers]], "accepted"
    )
    assert {reason: (answers[s.event_id].decision, answers[s.event_id].reason) for reason, s in rejected.items()} == {
        reason: ("rejected", reason) for reason in rejected
    }
    assert answers[batch[0].event_id].channel_id == "web" and answers[brokers[0].event_id].channel_id == "broker-x"
    # Exactly one answer per submission on the topic, retry included.
    counts = Counter(a.event_id for _, _, a in on_topic)
    assert {s.event_id: counts[s.event_id] for s in everything} == dict.fromkeys([s.event_id for s in everything], 1)


async def test_an_id_in_another_channels_namespace_is_refused_and_the_client_puts_its_own_ids_in_its_own(settings):
    squatter = cast("R-1", {"2": "for"}, event_id="broker-x:1")
    # Signed as web without the client, which would have namespaced it to web:broker-x:1.
    (payload,) = sign_batch([squatter], WEB.channel_id, WEB.key_id, WEB.private_key)
    squatted = Signed(squatter.event_id, key_for(squatter), payload)
    (own,) = sign([cast("R-2", {"2": "for"}, event_id="broker-x:1")], WEB)
    assert own.event_id == "web:broker-x:1"
    async with running_ledger(settings), producer(settings, "admin") as admin:
        await publish(admin, settings, admin_events())
        async with ChannelClient(settings, "channel") as client:
            answers = await client.submit([squatted, own], timeout=60)
    assert (answers["broker-x:1"].decision, answers["broker-x:1"].reason) == ("rejected", "foreign_event_id")
    assert (answers["web:broker-x:1"].decision, answers["web:broker-x:1"].reason) == ("accepted", None)


async def test_the_command_line_onboards_a_channel_submits_through_it_and_a_revocation_ends_its_key(settings, tmp_path):
    key_file, votes = tmp_path / "acme.key.json", tmp_path / "votes.jsonl"
    first, second = cast("R-1", {"2": "for"}, event_id="v-1"), cast("R-2", {"2": "for"}, event_id="v-2")
    async with running_ledger(settings), producer(settings, "admin") as admin:
        await publish(admin, settings, [small_meeting(signatures_required=True), register_event()])
        await run_cli(
            settings, "channel", "keygen", "--channel-id", "acme-web", "--key-id", "k1", "--out", str(key_file)
        )
        await run_cli(
            settings,
            *("channel", "register", "--meeting", "m1", "--key-file", str(key_file), "--kinds", "internet"),
            *("--effective-at", (T0 - timedelta(days=1)).isoformat()),
        )
        votes.write_bytes(encode(first) + b"\n")
        accepted = json.loads(
            await run_cli(settings, "channel", "submit", str(votes), "--key-file", str(key_file), "--json")
        )
        await run_cli(settings, "channel", "revoke", "--meeting", "m1", "--channel-id", "acme-web", "--key-id", "k1")
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log WHERE type = 'channel.key_revoked'", 1)
        votes.write_bytes(encode(second) + b"\n")
        revoked = json.loads(
            await run_cli(settings, "channel", "submit", str(votes), "--key-file", str(key_file), "--json")
        )
        listing = json.loads(await run_cli(settings, "channel", "list", "--meeting", "m1", "--json"))
    assert [(a["event_id"], a["answer"]["decision"], a["answer"]["reason"]) for a in accepted] == [
        ("acme-web:v-1", "accepted", None)
    ]
    assert [(a["event_id"], a["answer"]["decision"], a["answer"]["reason"]) for a in revoked] == [
        ("acme-web:v-2", "rejected", "key_revoked")
    ]
    ((key,),) = [listing["keys"]]
    assert (key["channel_id"], key["key_id"], key["kinds"]) == ("acme-web", "k1", ["internet"])
    assert key["status"].startswith("revoked since") and key["public_key"] == load_key(key_file).public_key

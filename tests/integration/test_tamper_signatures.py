"""Tamper evidence for channel signatures (issue 11): `audit verify`, online and on an export, re-verifies every
signature against the keys in force at its row's time, so a forged signature, a key swapped after the fact or a
revocation removed or moved shows as a row the rules decide otherwise, named with its reason, even when a superuser
re-hashed the chain to hide the edit."""

import json
from dataclasses import replace

import asyncpg
import msgspec
import pytest

from events import ChannelKeyRegistered, ChannelKeyRevoked, decode
from projections import signing
from services.adapters.kafka.topics import key_for, producer, publish, publish_raw
from services.adapters.postgres.log.verify import CHAIN_ROWS, chain_row
from services.read.export import export_meeting
from services.read.offline import verify_file
from services.read.verify import verify_meeting
from tests.chain_helpers import rechain
from tests.factories import at, cast, register_event, small_meeting
from tests.integration.helpers import cli, run_projector, running_ledger, wait_for

pytestmark = pytest.mark.integration

DESK = bytes(range(32)).hex()  # fixed test seeds, never a real channel's
RETIRED = bytes(range(5, 37)).hex()
FORGER = bytes(range(9, 41)).hex()

ADMIN = [
    small_meeting(signatures_required=True, broker_grace_s=None),
    register_event(),
    ChannelKeyRegistered(
        event_id="key-desk-k1",
        meeting_id="m1",
        channel_id="desk",
        key_id="k1",
        public_key=signing.public_key_of(DESK),
        kinds=["internet", "phone", "mail"],
        effective_at=at(-24),
    ),
    ChannelKeyRegistered(
        event_id="key-old-k0",
        meeting_id="m1",
        channel_id="old",
        key_id="k0",
        public_key=signing.public_key_of(RETIRED),
        kinds=["internet"],
        effective_at=at(-24),
    ),
    # Revoked long before any vote: every submission under it is key_revoked (S3), whatever its time.
    ChannelKeyRevoked(
        event_id="revoke-old-k0", meeting_id="m1", channel_id="old", key_id="k0", effective_at=at(-1), reason="retired"
    ),
]
# The desk signs three votes as one batch; a vote signed with the revoked key is rejected.
BATCH = [
    cast("R-1", {"2": "for"}, executed=1, event_id="desk:1"),
    cast("R-2", {"2": "against"}, executed=2, channel="phone", event_id="desk:2"),
    cast("B-1", {"3": "for"}, executed=3, event_id="desk:3"),
]
STALE = cast("B-2", {"3": "against"}, executed=4, event_id="old:1")
TOTAL = len(ADMIN) + len(BATCH) + 1


@pytest.fixture
async def signed_log(settings):
    """The meeting's log with signed votes (one rejected key_revoked); yields a superuser connection."""
    payloads = signing.sign_batch(BATCH, "desk", "k1", DESK) + signing.sign_batch([STALE], "old", "k0", RETIRED)
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, ADMIN)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(ADMIN))
        await publish_raw(client, settings.submissions_topic, [(key_for(decode(p)), p) for p in payloads])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", TOTAL)
    await run_projector(settings, TOTAL)  # an export is as of the projection's checkpoint
    conn = await asyncpg.connect(settings.pg_dsn)
    yield conn
    await conn.close()


async def decisions(conn) -> dict[str, tuple[int, str, str | None]]:
    rows = await conn.fetch("SELECT event_id, position, decision, reason FROM ledger_log WHERE meeting_id = 'm1'")
    return {r["event_id"]: (r["position"], r["decision"], r["reason"]) for r in rows}


async def forge(conn, edit, delete: str | None = None) -> None:
    """As a superuser past the append-only triggers: edit rows' payloads (or delete one), re-hash to the end."""
    await conn.execute("SET session_replication_role = replica")
    rows = [chain_row(r) for r in await conn.fetch(CHAIN_ROWS, "m1")]
    if delete is not None:
        await conn.execute("DELETE FROM ledger_log WHERE event_id = $1", delete)
        rows = [r for r in rows if r.event_id != delete]
    rows = [replace(r, payload=edit(r.event_id, r.payload)) for r in rows]
    for row in rechain(rows):
        await conn.execute(
            "UPDATE ledger_log SET prev_position = $2, hash = $3, payload = $4::json WHERE position = $1",
            row.position,
            row.prev_position,
            row.hash,
            row.payload,
        )


async def caught(settings, conn, tmp_path, position: int, reason: str) -> None:
    """verify (in-process, the CLI, and offline on an export) fails naming the row and the reason."""
    result = await verify_meeting(conn, "m1")
    assert result.chain_break is None  # re-hashed: the chain alone cannot tell
    assert not result.ok and result.misjudged is not None and result.misjudged.position == position
    assert reason in result.misjudged.detail, result.misjudged.detail
    code, out, err = await cli(settings, "audit", "verify", "--meeting", "m1", "--no-heads")
    assert code == 1 and f"FAIL decision: row {position} is logged" in out and reason in out, out + err
    assert out.rstrip().endswith("NOT VERIFIED")
    path = tmp_path / "m1.zip"
    await export_meeting(conn, "m1", path)
    offline = verify_file(path)
    assert not offline.ok and offline.chain_break is None
    [problem] = [p for p in offline.problems if p.startswith("decision:")]
    assert f"row {position} is logged" in problem and reason in problem, offline.problems
    code, out, err = await cli(settings, "audit", "verify", "--file", str(path))
    assert code == 1 and f"row {position} is logged" in out and reason in out, out + err


async def test_the_untouched_signed_log_verifies_online_and_offline(settings, signed_log, tmp_path):
    logged = await decisions(signed_log)
    assert [logged[e.event_id][1] for e in BATCH] == ["accepted"] * 3
    assert logged[STALE.event_id][1:] == ("rejected", "key_revoked")
    result = await verify_meeting(signed_log, "m1")
    assert result.ok, result.as_dict()
    await export_meeting(signed_log, "m1", tmp_path / "m1.zip")
    assert verify_file(tmp_path / "m1.zip").ok


async def test_a_vote_altered_and_signed_by_a_forger_under_the_channels_key_id_fails_as_bad_signature(
    settings, signed_log, tmp_path
):
    target = BATCH[1].event_id
    position = (await decisions(signed_log))[target][0]

    def forged(event_id: str, payload: str) -> str:
        if event_id != target:
            return payload
        event = decode(payload)
        altered = msgspec.structs.replace(event, choices={"2": "for"}, auth=None)
        # A well-formed batch of one claiming the desk's key id, signed with another key.
        return signing.sign_batch([altered], "desk", "k1", FORGER)[0].decode()

    await forge(signed_log, forged)
    await caught(
        settings, signed_log, tmp_path, position, "logged accepted, but the rules give rejected (bad_signature)"
    )


async def test_a_channel_key_swapped_after_the_fact_fails_every_signature_under_it_from_the_first(
    settings, signed_log, tmp_path
):
    logged = await decisions(signed_log)
    first = min(logged[e.event_id][0] for e in BATCH)  # the first in log order (partitions interleave)

    def swapped(event_id: str, payload: str) -> str:
        if event_id != "key-desk-k1":
            return payload
        return json.dumps({**json.loads(payload), "public_key": signing.public_key_of(FORGER)})

    await forge(signed_log, swapped)
    await caught(settings, signed_log, tmp_path, first, "logged accepted, but the rules give rejected (bad_signature)")


@pytest.mark.parametrize("how", ["removed", "moved past the vote"])
async def test_a_key_revocation_removed_or_moved_later_fails_the_vote_it_rejected(settings, signed_log, tmp_path, how):
    position = (await decisions(signed_log))[STALE.event_id][0]

    def later(event_id: str, payload: str) -> str:
        if event_id != "revoke-old-k0":
            return payload
        return json.dumps({**json.loads(payload), "effective_at": "2100-01-01T00:00:00+00:00"})

    if how == "removed":
        await forge(signed_log, lambda _, payload: payload, delete="revoke-old-k0")
    else:
        await forge(signed_log, later)
    await caught(settings, signed_log, tmp_path, position, "logged rejected (key_revoked), but the rules give accepted")

"""Tamper evidence: the hash chain pinpoints an altered or deleted row; the tally is re-derived."""

import asyncpg
import pytest

from services.kafka_io import producer, publish
from services.verify import verify_meeting
from tests.factories import cast, register_event, revoke, small_meeting
from tests.integration.helpers import running_ledger, wait_for
from tests.integration.test_projector import run_projector

pytestmark = pytest.mark.integration

VOTES = [cast("R-1", {"2": "for"}, executed=1), cast("R-2", {"2": "against"}, executed=2, channel="phone"),
         cast("B-1", {"3": "for"}, channel="broker"), revoke("R-2", executed=3),
         cast("R-2", {"2": "abstain"}, executed=4, channel="phone"), cast("X-9", {"2": "for"})]
TOTAL = 2 + len(VOTES)


@pytest.fixture
async def logged(settings):
    """A meeting's log with its projection caught up; yields a superuser connection."""
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()] + VOTES)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", TOTAL)
    await run_projector(settings, TOTAL)
    conn = await asyncpg.connect(settings.pg_dsn)
    yield conn
    await conn.close()


async def bypass_guards(conn):
    # As database superuser: replica mode skips the append-only triggers, as an attacker could.
    await conn.execute("SET session_replication_role = replica")


async def test_an_untouched_log_verifies_with_its_chain_and_tally(logged):
    result = await verify_meeting(logged, "m1")
    assert result.ok, result.as_dict()
    assert result.rows == TOTAL and len(result.final_hash) == 64


async def test_a_row_altered_by_a_superuser_is_pinpointed(logged):
    await bypass_guards(logged)
    position = await logged.fetchval("SELECT position FROM ledger_log WHERE event_id = $1", VOTES[1].event_id)
    await logged.execute("UPDATE ledger_log SET payload = replace(payload::text, '\"against\"', '\"for\"')::json"
                         " WHERE position = $1", position)
    result = await verify_meeting(logged, "m1")
    assert not result.ok
    assert (result.chain_break.position, result.chain_break.problem) == (position, "altered")


async def test_a_deleted_row_is_pinpointed_as_missing(logged):
    await bypass_guards(logged)
    await logged.execute("DELETE FROM ledger_log WHERE position = 5")
    result = await verify_meeting(logged, "m1")
    assert (result.chain_break.position, result.chain_break.problem) == (5, "missing")
    assert result.position_gap == 5


async def test_deleting_a_meetings_last_row_shows_as_a_gap_when_other_rows_follow(settings, logged):
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(meeting_id="m2", event_id="meeting-2")])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", TOTAL + 1)
    await bypass_guards(logged)
    await logged.execute("DELETE FROM ledger_log WHERE position = $1", TOTAL)
    result = await verify_meeting(logged, "m1")
    assert result.position_gap == TOTAL and not result.ok


async def test_truncating_the_log_is_caught_by_the_published_final_hash(logged):
    published = (await verify_meeting(logged, "m1")).final_hash  # e.g. from a report footer or export
    await bypass_guards(logged)
    await logged.execute("DELETE FROM ledger_log WHERE position = $1", TOTAL)
    result = await verify_meeting(logged, "m1", expect_hash=published)
    assert not result.ok and result.anchor_mismatch
    assert result.rows == TOTAL - 1


async def test_a_projection_that_differs_from_the_log_is_reported(logged):
    await logged.execute("UPDATE tally_buckets SET shares = shares + 1 WHERE item_id = '2' AND option = 'for'")
    result = await verify_meeting(logged, "m1")
    assert result.chain_break is None and result.tally_mismatches
    assert "item 2 for registered" in result.tally_mismatches[0]


async def test_a_forged_row_with_a_valid_hash_is_caught_by_re_judging_the_log(logged):
    """Anyone able to INSERT can compute a chain hash: verify re-derives every decision too."""
    from events import encode
    from projections.chain import canonical, link

    forged = cast("R-1", {"2": "against"}, executed=9, shares=9_000_000)  # R-1 holds 3,000: exceeds_position
    payload = encode(forged).decode()
    last = await logged.fetchrow("SELECT position, hash FROM ledger_log WHERE meeting_id = 'm1' ORDER BY position DESC LIMIT 1")
    position = last["position"] + 1
    hash_ = link(bytes(last["hash"]), canonical(position, last["position"], "m1", forged.event_id, "vote.cast",
                                                "accepted", None, payload))
    await logged.execute(
        "INSERT INTO ledger_log (position, prev_position, meeting_id, event_id, type, control_number, channel,"
        " executed_at, received_at, decision, reason, payload, hash)"
        " VALUES ($1, $2, 'm1', $3, 'vote.cast', 'R-1', 'internet', $4, $5, 'accepted', NULL, $6, $7)",
        position, last["position"], forged.event_id, forged.executed_at, forged.received_at, payload, hash_)
    result = await verify_meeting(logged, "m1")
    assert result.chain_break is None and not result.ok
    assert result.misjudged.position == position and "exceeds_position" in result.misjudged.detail


async def test_a_copied_column_that_disagrees_with_its_payload_is_reported(logged):
    await bypass_guards(logged)
    position = await logged.fetchval("SELECT position FROM ledger_log WHERE event_id = $1", VOTES[0].event_id)
    await logged.execute("UPDATE ledger_log SET control_number = 'R-2' WHERE position = $1", position)
    result = await verify_meeting(logged, "m1")
    assert result.misjudged.position == position and "control_number" in result.misjudged.detail


async def test_a_hash_published_at_a_position_anchors_the_chain_there(logged):
    row = await logged.fetchrow("SELECT position, encode(hash, 'hex') AS h FROM ledger_log WHERE position = 4")
    assert (await verify_meeting(logged, "m1", expect_hash=f"4:{row['h']}")).ok
    assert not (await verify_meeting(logged, "m1", expect_hash=f"4:{'0' * 64}")).ok

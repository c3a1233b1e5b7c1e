"""Tamper evidence: the hash chains pinpoint an altered or deleted row or parked message, published
heads catch an edit re-hashed to the end or a cut tail, and nothing is certified that is not there."""

import asyncio
import itertools
from dataclasses import replace
from datetime import UTC

import asyncpg
import pytest

from events import decode, encode_compact
from services.adapters.kafka.topics import producer, publish, publish_raw
from services.adapters.postgres.log.verify import CHAIN_ROWS, chain_row
from services.read.errors import UnknownMeeting
from services.read.verify import verify_meeting
from services.runtime.chain_heads import read_heads
from tests.chain_helpers import rechain
from tests.factories import cast, register_event, revoke, small_meeting
from tests.integration.helpers import cli, run_projector, running_ledger, wait_for

pytestmark = pytest.mark.integration

VOTES = [
    cast("R-1", {"2": "for"}, executed=1),
    cast("R-2", {"2": "against"}, executed=2, channel="phone"),
    cast("B-1", {"3": "for"}, channel="broker"),
    revoke("R-2", executed=3),
    cast("R-2", {"2": "abstain"}, executed=4, channel="phone"),
    cast("X-9", {"2": "for"}),
]
TOTAL = 2 + len(VOTES)


@pytest.fixture
async def logged(settings):
    """A meeting's log with its projection caught up; yields a superuser connection."""
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()] + VOTES)
        await publish_raw(client, settings.submissions_topic, [(b"R-1", b"not json"), (b"R-2", b'{"type": 7}')])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", TOTAL)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_parked", 2)
    # The ledger published the heads as it stopped.
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
    await logged.execute(
        "UPDATE ledger_log SET payload = replace(payload::text, '\"against\"', '\"for\"')::json WHERE position = $1",
        position,
    )
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
    from datetime import datetime

    from events import encode
    from projections.chain import canonical_v3, link

    forged = cast("R-1", {"2": "against"}, executed=9, shares=9_000_000)  # R-1 holds 3,000: exceeds_position
    payload = encode(forged).decode()
    last = await logged.fetchrow(
        "SELECT position, hash FROM ledger_log WHERE meeting_id = 'm1' ORDER BY position DESC LIMIT 1"
    )
    position = last["position"] + 1
    now = datetime.now(UTC)
    hash_ = link(
        bytes(last["hash"]),
        canonical_v3(
            position,
            last["position"],
            "m1",
            forged.event_id,
            "vote.cast",
            "accepted",
            None,
            payload,
            now,
            None,
            None,
            None,
            None,
        ),
    )
    await logged.execute(
        "INSERT INTO ledger_log (position, prev_position, meeting_id, event_id, type, control_number, channel,"
        " executed_at, received_at, decision, reason, payload, hash, recorded_at)"
        " VALUES ($1, $2, 'm1', $3, 'vote.cast', 'R-1', 'internet', $4, $5, 'accepted', NULL, $6, $7, $8)",
        position,
        last["position"],
        forged.event_id,
        forged.executed_at,
        forged.received_at,
        payload,
        hash_,
        now,
    )
    result = await verify_meeting(logged, "m1")
    assert result.chain_break is None and not result.ok
    assert result.misjudged.position == position and "exceeds_position" in result.misjudged.detail


async def test_a_duplicate_event_id_rejection_needs_an_accepted_row_of_its_id_in_its_own_meeting(logged):
    """R18 is per meeting: another meeting's row under the id cannot excuse a rejection that hides a vote."""
    from tests.integration.helpers import append, log_row

    squat = cast("R-1", {"2": "against"}, executed=9, event_id=VOTES[0].event_id)  # other bytes, same meeting
    await append(logged, [log_row(squat, "rejected", "duplicate_event_id")])
    result = await verify_meeting(logged, "m1")
    assert not [p for p in result.problems if "duplicate_event_id" in p], result.problems
    applied_elsewhere = cast("R-1", {"2": "for"}, executed=5, event_id="hidden-1", meeting_id="m2")
    hidden = cast("R-2", {"2": "for"}, executed=5, event_id="hidden-1")
    await append(logged, [log_row(applied_elsewhere), log_row(hidden, "rejected", "duplicate_event_id")])
    position = await logged.fetchval(
        "SELECT position FROM ledger_log WHERE meeting_id = 'm1' AND event_id = 'hidden-1'"
    )
    result = await verify_meeting(logged, "m1")
    assert not result.ok
    assert (
        f"row {position} is rejected as duplicate_event_id, but no earlier row of its meeting applied its id"
        in result.problems
    )


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


# Nothing to see is nothing to certify.


async def test_an_unknown_meeting_is_a_user_error_not_a_verification(settings, logged):
    with pytest.raises(UnknownMeeting):
        await verify_meeting(logged, "no-such-meeting", heads=await read_heads(settings))
    code, out, err = await cli(settings, "audit", "verify", "--meeting", "no-such-meeting")
    assert code == 2 and out == "" and "no row of meeting 'no-such-meeting' in the log" in err
    assert len(err.strip().splitlines()) == 1


async def test_a_meeting_whose_rows_were_all_deleted_fails_on_its_published_heads(settings, logged):
    await bypass_guards(logged)
    await logged.execute("DELETE FROM ledger_log WHERE meeting_id = 'm1'")
    result = await verify_meeting(logged, "m1", heads=await read_heads(settings))
    assert not result.ok and result.rows == 0
    assert result.heads.failures[0].head.position == TOTAL and "the chain is empty" in result.heads.failures[0].detail
    with pytest.raises(UnknownMeeting):  # without the heads, nothing says the meeting ever existed
        await verify_meeting(logged, "m1")
    code, out, _err = await cli(settings, "audit", "verify", "--meeting", "m1")
    assert code == 1 and f"FAIL published head of the meeting's chain at position {TOTAL}" in out
    code, _out, err = await cli(settings, "audit", "verify", "--meeting", "m1", "--no-heads")
    assert code == 2 and "every row of it was deleted" in err


async def test_a_truncated_log_with_triggers_disabled_is_never_verified(settings, logged):
    await logged.execute("ALTER TABLE ledger_log DISABLE TRIGGER ALL")
    await logged.execute("TRUNCATE ledger_log")
    for args in ((), ("--no-heads",)):
        code, out, _err = await cli(settings, "audit", "verify", "--meeting", "m1", *args)
        assert code != 0 and "VERIFIED" not in out.replace("NOT VERIFIED", "")


async def test_a_meeting_without_its_meeting_scheduled_row_is_not_certified(settings, logged):
    await bypass_guards(logged)
    rows = [chain_row(r) for r in await logged.fetch(CHAIN_ROWS, "m1")]
    await logged.execute("DELETE FROM ledger_log WHERE position = 1")
    await rehash(logged, rechain(rows[1:]))
    result = await verify_meeting(logged, "m1")
    assert result.chain_break is None and not result.ok
    assert "no accepted meeting.scheduled" in result.problems[0]


# recorded_at (tally --as-of TIME) and the parked messages are under the chains.


async def test_a_changed_recorded_at_is_pinpointed_even_when_the_final_hash_still_matches(logged):
    published = (await verify_meeting(logged, "m1")).final_hash
    await bypass_guards(logged)
    await logged.execute("UPDATE ledger_log SET recorded_at = recorded_at - interval '1 hour' WHERE position = 4")
    result = await verify_meeting(logged, "m1", expect_hash=published)
    assert not result.anchor_mismatch  # the stored hashes are untouched ...
    assert (result.chain_break.position, result.chain_break.problem) == (4, "altered")  # ... and no longer match


async def test_a_changed_kafka_source_offset_is_pinpointed(logged):
    await bypass_guards(logged)
    await logged.execute("UPDATE ledger_log SET source_offset = source_offset + 1 WHERE position = 6")
    assert (await verify_meeting(logged, "m1")).chain_break.position == 6


@pytest.mark.parametrize(
    "edit",
    [
        "value = '\\x00'::bytea",
        "reason = 'refused_by_database'",
        "detail = 'nothing to see'",
        "parked_at = parked_at + interval '1 second'",
    ],
)
async def test_a_changed_parked_message_is_pinpointed_on_its_own_chain(logged, edit):
    first = await logged.fetchval("SELECT min(id) FROM ledger_parked")
    await bypass_guards(logged)
    await logged.execute(f"UPDATE ledger_parked SET {edit} WHERE id = $1", first)
    result = await verify_meeting(logged, "m1", expect_hash=(await verify_meeting(logged, "m1")).final_hash)
    assert not result.ok and result.chain_break is None
    assert (result.parked.first_break.position, result.parked.first_break.problem) == (first, "altered")


async def test_a_deleted_parked_message_is_caught_by_its_successor_or_the_published_parked_head(settings, logged):
    ids = [r["id"] for r in await logged.fetch("SELECT id FROM ledger_parked ORDER BY id")]
    await bypass_guards(logged)
    await logged.execute("DELETE FROM ledger_parked WHERE id = $1", ids[0])
    assert (await verify_meeting(logged, "m1")).parked.first_break.problem == "missing"
    await logged.execute("DELETE FROM ledger_parked WHERE id = $1", ids[1])  # now the chain is just empty
    result = await verify_meeting(logged, "m1", heads=await read_heads(settings))
    assert result.parked.first_break is None and not result.ok
    assert result.parked_heads.failures[0].head.position == ids[1]


# Published heads anchor the chain outside the database.


async def rehash(conn, rows) -> None:
    """Write recomputed chain columns back, as a superuser covering an edit would (its compact form too, 019)."""
    for row in rows:
        await conn.execute(
            "UPDATE ledger_log SET prev_position = $2, hash = $3, payload = $4::json, compact = $5 WHERE position = $1",
            row.position,
            row.prev_position,
            row.hash,
            row.payload,
            encode_compact(decode(row.payload)),
        )


async def test_an_edit_re_hashed_to_the_end_passes_the_chain_but_fails_the_published_head(settings, logged):
    await bypass_guards(logged)
    rows = [chain_row(r) for r in await logged.fetch(CHAIN_ROWS, "m1")]
    target = next(i for i, r in enumerate(rows) if r.event_id == VOTES[1].event_id)
    edited = replace(rows[target], payload=rows[target].payload.replace('"against"', '"for"'))
    await rehash(logged, rechain([edited, *rows[target + 1 :]], (rows[target - 1].position, rows[target - 1].hash)))
    assert (await verify_meeting(logged, "m1")).chain_break is None  # the chain alone cannot tell
    result = await verify_meeting(logged, "m1", heads=await read_heads(settings))
    assert not result.ok and result.heads.failures[0].head.position == TOTAL
    assert "re-hashed" in result.heads.failures[0].detail
    code, out, err = await cli(settings, "audit", "verify", "--meeting", "m1")
    assert code == 1 and f"FAIL published head of the meeting's chain at position {TOTAL}" in out, out + err
    code, out, _err = await cli(settings, "audit", "verify", "--meeting", "m1", "--no-heads")
    assert code == 0 and "SKIP published chain heads: NOT CHECKED (--no-heads)" in out
    assert out.rstrip().endswith("VERIFIED, except against the published chain heads (not checked)")


async def test_a_tail_cut_after_a_head_was_published_fails_that_head(settings, logged):
    await bypass_guards(logged)
    await logged.execute("DELETE FROM ledger_log WHERE position > $1", TOTAL - 2)
    assert (await verify_meeting(logged, "m1")).chain_break is None
    result = await verify_meeting(logged, "m1", heads=await read_heads(settings))
    assert [f.head.position for f in result.heads.failures] == [TOTAL]
    assert "removed from its end" in result.heads.failures[0].detail


async def test_an_untouched_log_holds_every_published_head_through_the_cli(settings, logged):
    heads = [h for h in await read_heads(settings) if h.meeting_id == "m1"]
    assert heads and heads[-1].position == TOTAL and heads[-1].rows == TOTAL
    code, out, err = await cli(settings, "audit", "verify", "--meeting", "m1")
    assert code == 0 and out.rstrip().endswith("VERIFIED"), out + err
    assert f"ok   published heads of the meeting's chain: all {len(heads)} on" in out
    assert "ok   parked messages' chain: 2 message(s)" in out


async def test_heads_are_published_while_the_ledger_runs_every_n_rows(settings):
    fast = settings.model_copy(update={"heads_every_rows": 3, "heads_every_seconds": 0.2})
    async with running_ledger(fast), producer(fast) as client:
        await publish(client, fast, [small_meeting(), register_event()])
        await wait_for(fast.pg_dsn, "SELECT count(*) FROM ledger_log", 2)
        for i, vote in enumerate(VOTES[:3]):
            await publish(client, fast, [vote])
            await wait_for(fast.pg_dsn, "SELECT count(*) FROM ledger_log", 3 + i)
            await asyncio.sleep(0.5)
        published = [h for h in await read_heads(fast) if h.meeting_id == "m1"]
    assert [h.position for h in published][-3:] == [3, 4, 5] and [h.rows for h in published][-1] == 5
    assert all(later.published_at >= earlier.published_at for earlier, later in itertools.pairwise(published))

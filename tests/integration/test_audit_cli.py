"""Audit and replay through Kafka, the ledger, the log and the CLI: lineage, log filters, time travel, diffs."""

import json

import asyncpg
import pytest

from services.adapters.kafka.topics import producer, publish
from services.read.tallies import read_tally
from tests.factories import at, cast, register_event, revoke, small_meeting
from tests.integration.helpers import append, log_row, run_cli, run_projector, running_ledger, wait_for

pytestmark = pytest.mark.integration

R2_FIRST = cast("R-2", {"1.1": "against"}, executed=5, channel="phone", event_id="r2-phone")
R2_REVOKED = revoke("R-2", executed=6, event_id="r2-revoked")
R2_AGAIN = cast("R-2", {"3": "against"}, executed=7, channel="phone", event_id="r2-again")
R1_INTERNET = cast("R-1", {"2": "for"}, executed=50, received=50, event_id="r1-internet")
R1_MAIL = cast(
    "R-1", {"2": "against"}, executed=10, received=60, channel="mail", signatures=["Alice"], event_id="r1-mail"
)  # dated before the internet vote, received after it (R5)
R1_LATE = cast("R-1", {"2": "abstain"}, executed=24 * 29 + 1, event_id="r1-late")  # cutoff_passed (R12)
STRANGER = cast("X-1", {"2": "for"}, event_id="x1")  # not_entitled (R1)
FIRST = [
    R2_FIRST,
    R2_REVOKED,
    R2_AGAIN,
    R1_INTERNET,
    R1_MAIL,
    R1_LATE,
    STRANGER,
    cast("B-1", {"2": "for", "3": "for"}, channel="broker", event_id="b1"),
]
SECOND = [
    cast("B-2", {"2": "for"}, channel="broker", discretionary=True, event_id="b2-discretion"),
    cast("B-1", {"2": "against", "3": "against"}, executed=3, channel="broker", event_id="b1-again"),
    cast("R-1", {"2": "against"}, executed=24 * 30, channel="in_person", event_id="r1-ballot"),
]


async def cli_json(settings, *args):
    return json.loads(await run_cli(settings, *args, "--json"))


async def test_r5_r7_r12_audit_time_travel_and_diff_explain_every_vote_through_the_cli(settings):
    middle = 2 + len(FIRST)
    end = middle + len(SECOND)
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()] + FIRST)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", middle)
        await run_projector(settings, middle)
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            projected_then = await read_tally(conn, "m1")
            recorded_then = await conn.fetchval("SELECT recorded_at FROM ledger_log WHERE position = $1", middle)
        finally:
            await conn.close()
        await publish(client, settings, SECOND)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", end)
    await run_projector(settings, end)
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        projected_now = await read_tally(conn, "m1")
    finally:
        await conn.close()

    # Lineage (R7): the revoked phone vote names the revocation, which names what it voided.
    history = await cli_json(settings, "audit", "history", "--meeting", "m1", "--control-number", "R-2")
    rows = {r["event_id"]: r for r in history["rows"]}
    assert [r["event_id"] for r in history["rows"]] == ["r2-phone", "r2-revoked", "r2-again"]
    assert (rows["r2-phone"]["status"], rows["r2-phone"]["rule"], rows["r2-phone"]["by"]["event_id"]) == (
        "superseded",
        "R7",
        "r2-revoked",
    )
    assert rows["r2-revoked"]["status"] == "revokes"
    assert [v["event_id"] for v in rows["r2-revoked"]["voids"]] == ["r2-phone"]
    assert rows["r2-again"]["status"] == "counts" and history["counts"]["event_id"] == "r2-again"

    # Lineage (R5, R6, R12): the earlier-dated mail card loses to the internet vote, which the ballot
    # at the meeting supersedes; the internet vote after the cut-off was refused at ingest.
    history = await cli_json(settings, "audit", "history", "--meeting", "m1", "--control-number", "R-1")
    rows = {r["event_id"]: r for r in history["rows"]}
    assert (rows["r1-mail"]["rule"], rows["r1-mail"]["by"]["event_id"]) == ("R5", "r1-internet")
    assert (rows["r1-internet"]["rule"], rows["r1-internet"]["by"]["event_id"]) == ("R6", "r1-ballot")
    assert (rows["r1-late"]["decision"], rows["r1-late"]["reason"], rows["r1-late"]["status"]) == (
        "rejected",
        "cutoff_passed",
        "rejected",
    )
    assert history["counts"]["event_id"] == "r1-ballot"
    table = await run_cli(settings, "audit", "history", "--meeting", "m1", "--control-number", "R-1")
    assert "superseded R5 by" in table and "rejected: cutoff_passed" in table

    # Log filters (control numbers hash to different partitions: their relative order may vary).
    async def events(*filters):
        report = await cli_json(settings, "audit", "events", "--meeting", "m1", *filters)
        positions = [e["position"] for e in report["events"]]
        assert positions == sorted(positions)
        return sorted(e["event_id"] for e in report["events"])

    assert await events("--decision", "rejected") == ["r1-late", "x1"]
    assert await events("--reason", "cutoff_passed") == ["r1-late"]
    assert await events("--channel", "mail") == ["r1-mail", "r2-revoked"]
    assert await events("--channel", "phone", "--decision", "accepted") == ["r2-again", "r2-phone"]
    assert await events("--submitted-by", "secretary") == ["r2-revoked"]
    window = await events("--from", at(5).isoformat(), "--to", at(7).isoformat())
    assert window == ["r2-phone", "r2-revoked"]  # [from, to): the re-vote received at 7 is outside
    limited = await cli_json(settings, "audit", "events", "--meeting", "m1", "--limit", "2")
    assert len(limited["events"]) == 2 and limited["truncated"] is True
    assert "row(s) of meeting m1" in await run_cli(settings, "audit", "events", "--meeting", "m1")

    # Time travel: the tally at the middle position, by position and by time, is what was projected then.
    assert await cli_json(settings, "tally", "--meeting", "m1", "--as-of", str(middle)) == projected_then
    assert await cli_json(settings, "tally", "--meeting", "m1", "--as-of", recorded_then.isoformat()) == projected_then
    assert await cli_json(settings, "tally", "--meeting", "m1", "--as-of", str(end)) == projected_now
    assert f"(log position {middle})" in await run_cli(settings, "tally", "--meeting", "m1", "--as-of", str(middle))

    # Diff: per-item deltas are the change of the projected tally, explained per control number.
    change = await cli_json(settings, "tally", "diff", "--meeting", "m1", str(middle), str(end))
    for item_id, counts in projected_now["items"].items():
        for column, value in counts.items():
            if column != "outcome":
                assert change["items"][item_id][column] == value - projected_then["items"][item_id][column]
    assert (
        change["quorum"]["present"]["delta"]
        == projected_now["quorum"]["present"] - projected_then["quorum"]["present"]
        == 4000
    )
    by_number = {c["control_number"]: c for c in change["control_numbers"]}
    assert set(by_number) == {"B-1", "B-2", "R-1"}
    assert [e["event_id"] for e in by_number["R-1"]["events"]] == ["r1-ballot"]
    assert by_number["R-1"]["items"]["2"] == {"for": -3000, "against": 3000}
    assert by_number["B-2"]["present"] == 4000
    text = await run_cli(settings, "tally", "diff", "--meeting", "m1", str(middle), str(end))
    assert "caused by" in text and "r1-ballot" in text


async def test_the_ledger_records_each_batch_at_one_instant_never_before_the_previous_row(pg_dsn):
    """`tally --as-of TIME` needs the rows recorded by a time to be a prefix of the log, whatever the clock does."""
    from datetime import timedelta

    conn = await asyncpg.connect(pg_dsn)
    try:
        await append(conn, [log_row(small_meeting()), log_row(register_event())])
        first = await conn.fetch("SELECT recorded_at FROM ledger_log ORDER BY position")
        assert first[0]["recorded_at"] == first[1]["recorded_at"]  # one batch, one instant
        # A clock that stepped back is simulated by a last row recorded in the future.
        ahead = first[1]["recorded_at"] + timedelta(hours=1)
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE ledger_log SET recorded_at = $1 WHERE position = 2", ahead)
        await append(conn, [log_row(cast("R-1", {"2": "for"}))])
        assert await conn.fetchval("SELECT recorded_at FROM ledger_log WHERE position = 3") == ahead
    finally:
        await conn.close()

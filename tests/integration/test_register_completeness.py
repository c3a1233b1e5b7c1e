"""An incomplete register never goes unnoticed (issue 12): through Kafka, the ledger, the projector and the CLI."""

import json

import asyncpg
import msgspec
import pytest

from events import Entitlement, Position, PositionsRecorded, RegisterTotals
from projections.completeness import register_digest
from services.adapters.kafka.topics import producer, publish
from tests.factories import POSITIONS, cast, small_meeting
from tests.integration.helpers import cli, run_cli, run_projector, running_ledger, wait_for

pytestmark = pytest.mark.integration

DECLARED = RegisterTotals(chunks=2, positions=4, shares=10_000)  # POSITIONS: 3,000 + 1,000 + 2,000 + 4,000
REGISTERED, BENEFICIAL = POSITIONS[:2], POSITIONS[2:]


def chunk(number: int, positions, chunks: int = 2, event_id: str | None = None, meeting_id: str = "m1"):
    return PositionsRecorded(
        event_id=event_id or f"{meeting_id}-chunk-{number}",
        meeting_id=meeting_id,
        chunk=number,
        chunks=chunks,
        positions=list(positions),
        entitlements=[Entitlement(nominee="Broker X", shares=6000)] if number == 1 else [],
    )


async def decisions(dsn: str) -> dict[str, tuple[str, str | None]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT event_id, decision, reason FROM ledger_log ORDER BY position")
    finally:
        await conn.close()
    return {r["event_id"]: (r["decision"], r["reason"]) for r in rows}


async def test_one_of_two_chunks_is_flagged_everywhere_and_final_refused_until_the_second_arrives(settings, tmp_path):
    first = [small_meeting(register=DECLARED), chunk(0, REGISTERED), cast("R-1", {"2": "for"}, event_id="v-r1")]
    # A chunk announcing another count than declared; one over the declared positions, within the shares.
    one_short = msgspec.structs.replace(BENEFICIAL[1], shares=3999)
    fifth = Position(control_number="R-9", kind="registered", shares=1, holders=["Ivy"])
    wrong = [chunk(1, BENEFICIAL, chunks=3, event_id="wrong-count"), chunk(1, [BENEFICIAL[0], one_short, fifth])]
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, first + wrong)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 5)
    await run_projector(settings, 5)
    logged = await decisions(settings.pg_dsn)
    assert logged["wrong-count"] == ("rejected", "chunks_mismatch")
    assert logged["m1-chunk-1"] == ("rejected", "register_exceeds_declared")

    # status, in JSON and in words.
    status = json.loads(await run_cli(settings, "status", "--format", "json"))
    register = status["registers"]["m1"]
    assert register == {
        "complete": False,
        "chunks_recorded": 1,
        "chunks_expected": 2,
        "missing_chunks": [1],
        "chunks_missing": 1,
        "positions": 2,
        "shares": 4000,
        "digest": None,
        "declared": {"chunks": 2, "positions": 4, "shares": 10_000, "digest": None},
    }
    text = await run_cli(settings, "status")
    assert "registers          1 meeting(s), 1 INCOMPLETE" in text
    assert (
        "INCOMPLETE register m1: 1 of 2 chunks recorded (missing 1); 2 of 4 declared positions;"
        " 4,000 of 10,000 declared shares" in text
    )

    # tally: the JSON's register object (at the projector's checkpoint), the table's line, as-of and an export alike.
    tally = json.loads(await run_cli(settings, "tally", "--meeting", "m1", "--json"))
    assert tally["register"] == register and tally["as_of_position"] == 5
    assert {"meeting_id", "as_of_position", "outstanding", "quorum", "items"} <= set(tally)
    table = await run_cli(settings, "tally", "--meeting", "m1")
    assert "REGISTER INCOMPLETE: 1 of 2 chunks recorded (missing 1)" in table
    code, out, err = await cli(settings, "tally", "--meeting", "m1", "--format", "csv")
    assert code == 0 and out.startswith("item,") and "REGISTER" not in out
    assert "vote-ledger: warning: REGISTER INCOMPLETE: 1 of 2 chunks recorded (missing 1)" in err
    as_of = json.loads(await run_cli(settings, "tally", "--meeting", "m1", "--as-of", "5", "--json"))
    assert as_of == tally
    export = tmp_path / "m1.zip"
    await run_cli(settings, "export", "--meeting", "m1", "--out", str(export))
    assert json.loads(await run_cli(settings, "tally", "--file", str(export), "--json")) == tally

    # audit verify: VERIFIED is about the log, but it says the register is incomplete and exits 3.
    for source in (("--meeting", "m1"), ("--file", str(export))):
        code, out, err = await cli(settings, "audit", "verify", *source)
        assert code == 3, out + err
        assert "WARN REGISTER INCOMPLETE: 1 of 2 chunks recorded (missing 1)" in out
        assert "\nVERIFIED" in out and out.rstrip().endswith("its results are not final (exit 3)")
        code, out, _err = await cli(settings, "audit", "verify", *source, "--format", "json")
        verified = json.loads(out)
        assert code == 3 and verified["ok"] is True and verified["register"] == register

    # report final refuses, in one line; --preliminary gives it, titled PRELIMINARY.
    for source in (("--meeting", "m1"), ("--file", str(export))):
        for form in ("md", "json", "csv"):
            code, out, err = await cli(settings, "report", "final", *source, "--format", form)
            assert code == 2 and out == "" and len(err.splitlines()) == 1, err
            assert "meeting m1: no final report while its register is INCOMPLETE: 1 of 2 chunks recorded" in err
            assert err.rstrip().endswith("pass --preliminary for a report titled PRELIMINARY")
        markdown = await run_cli(settings, "report", "final", *source, "--preliminary")
        lines = markdown.splitlines()
        assert lines[0] == "# PRELIMINARY: Item 5.07 Submission of Matters to a Vote of Security Holders"
        assert any(line.startswith("**Register INCOMPLETE: 1 of 2 chunks recorded (missing 1)") for line in lines)
        report = json.loads(await run_cli(settings, "report", "final", *source, "--preliminary", "--json"))
        assert report["report_title"].startswith("PRELIMINARY") and report["preliminary"] is True
        assert report["register"] == register and report["items"]["2"]["for"] == 3000
        code, _out, err = await cli(settings, "report", "final", *source, "--preliminary", "--format", "csv")
        assert code == 2 and "CSV has no title to say PRELIMINARY in" in err
    overvotes = await run_cli(settings, "report", "overvotes", "--meeting", "m1")
    assert "REGISTER INCOMPLETE: 1 of 2 chunks recorded (missing 1)" in overvotes

    # The second chunk arrives: everything is clean.
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [chunk(1, BENEFICIAL, event_id="m1-chunk-1-again")])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 6)
    await run_projector(settings, 6)
    status = json.loads(await run_cli(settings, "status", "--format", "json"))
    complete = {
        "complete": True,
        "chunks_recorded": 2,
        "chunks_expected": 2,
        "missing_chunks": [],
        "chunks_missing": 0,
        "positions": 4,
        "shares": 10_000,
        "digest": None,
        "declared": {"chunks": 2, "positions": 4, "shares": 10_000, "digest": None},
    }
    assert status["registers"]["m1"] == complete
    text = await run_cli(settings, "status")
    assert "registers          1 meeting(s), all complete" in text and "INCOMPLETE" not in text
    assert json.loads(await run_cli(settings, "tally", "--meeting", "m1", "--json"))["register"] == complete
    assert "REGISTER" not in await run_cli(settings, "tally", "--meeting", "m1")
    code, out, err = await cli(settings, "tally", "--meeting", "m1", "--format", "csv")
    assert code == 0 and out.startswith("item,") and "REGISTER" not in err
    code, out, err = await cli(settings, "audit", "verify", "--meeting", "m1")
    assert code == 0 and out.rstrip().endswith("\nVERIFIED"), out + err
    assert "ok   register complete: 2 chunk(s), 4 positions, 10,000 shares (as declared)" in out
    report = json.loads(await run_cli(settings, "report", "final", "--meeting", "m1", "--json"))
    assert report["preliminary"] is False and not report["report_title"].startswith("PRELIMINARY")
    assert report["register"] == complete and report["log"]["position"] == 6
    markdown = await run_cli(settings, "report", "final", "--meeting", "m1")
    assert markdown.startswith("# Item 5.07 Submission of Matters to a Vote of Security Holders\n")
    assert "Register" not in markdown


async def test_an_older_meeting_without_a_declaration_is_complete_by_its_chunks_own_count(settings):
    older = "old"
    events = [
        small_meeting(meeting_id=older, event_id="old-meeting"),
        chunk(0, REGISTERED, meeting_id=older),
        small_meeting(meeting_id="bare", event_id="bare-meeting"),  # no chunk at all
    ]
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, events)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 3)
    await run_projector(settings, 3)
    registers = json.loads(await run_cli(settings, "status", "--format", "json"))["registers"]
    assert registers[older]["declared"] is None and registers[older]["complete"] is False
    assert (registers[older]["chunks_recorded"], registers[older]["chunks_expected"]) == (1, 2)
    assert registers["bare"]["chunks_expected"] is None and registers["bare"]["complete"] is False
    text = await run_cli(settings, "status")
    assert "INCOMPLETE register bare: no register chunk recorded" in text
    code, _out, err = await cli(settings, "report", "final", "--meeting", older)
    assert code == 2 and "1 of 2 chunks recorded (missing 1)" in err

    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [chunk(1, BENEFICIAL, meeting_id=older)])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 4)
    await run_projector(settings, 4)
    tally = json.loads(await run_cli(settings, "tally", "--meeting", older, "--json"))
    assert tally["register"]["complete"] is True and tally["register"]["declared"] is None
    code, out, _err = await cli(settings, "audit", "verify", "--meeting", older)
    assert code == 0 and "(as announced by its chunks; no totals declared)" in out
    assert (await cli(settings, "report", "final", "--meeting", older))[0] == 0


async def test_chunks_of_two_versions_with_the_declared_totals_are_flagged_everywhere_as_not_the_declared_register(
    settings, tmp_path
):
    # An interrupted load of version A (its meeting and chunk 0), then version B reloaded: B moved one share
    # from B-1 to B-2 (chunk 1 of both), so its chunk 1 completes the counts of A's declaration.
    entitlements = {"Broker X": 6000}
    declared = msgspec.structs.replace(DECLARED, digest=register_digest(POSITIONS, entitlements))
    moved = [msgspec.structs.replace(BENEFICIAL[0], shares=1999), msgspec.structs.replace(BENEFICIAL[1], shares=4001)]
    recorded = register_digest(REGISTERED + moved, entitlements)
    events = [small_meeting(register=declared), chunk(0, REGISTERED), chunk(1, moved, event_id="version-b-chunk-1")]
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, events)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 3)
    await run_projector(settings, 3)
    assert {decision for decision, _reason in (await decisions(settings.pg_dsn)).values()} == {"accepted"}
    differs = "the recorded register differs from the declared one"
    differs += f" (digest {recorded[:16]}…, declared {declared.digest[:16]}…)"

    register = json.loads(await run_cli(settings, "status", "--format", "json"))["registers"]["m1"]
    assert register["complete"] is False and (register["positions"], register["shares"]) == (4, 10_000)
    assert register["digest"] == recorded and register["declared"]["digest"] == declared.digest
    assert f"INCOMPLETE register m1: {differs}" in await run_cli(settings, "status")
    assert json.loads(await run_cli(settings, "tally", "--meeting", "m1", "--json"))["register"] == register
    assert f"REGISTER INCOMPLETE: {differs}" in await run_cli(settings, "tally", "--meeting", "m1")
    export = tmp_path / "m1.zip"
    await run_cli(settings, "export", "--meeting", "m1", "--out", str(export))
    for source in (("--meeting", "m1"), ("--file", str(export))):
        code, out, err = await cli(settings, "audit", "verify", *source)
        assert code == 3 and f"WARN REGISTER INCOMPLETE: {differs}" in out, out + err
        code, out, err = await cli(settings, "report", "final", *source)
        assert code == 2 and f"no final report while its register is INCOMPLETE: {differs}" in err, out + err

"""R19 under the `reject` over-vote policy through the public path: Kafka -> ledger -> log -> projector -> audit.

Broker X is entitled to 4,000 shares; its positions B-1 3,000, B-2 3,000 and B-3 2,000 all vote item 2.
Published one at a time, so the log order is the list's order (R17 `reject` depends on it):
  c1   B-1 for 3,000                                  -> 3,000 counted
  c2   B-2 against 3,000                              -> 6,000 > 4,000: refused (vote.refused after it)
  b3   B-3 owner: for 500 (shares 500), executed 1.5  -> 3,500
  d3   B-3 discretionary for (2,000), executed 2.5    -> fills nothing: the owner marked item 2 (R10)
  rv3  B-3 revoked at 2: voids b3 (R7), revives d3    -> 3,000 + 2,000 = 5,000 > 4,000: d3 refused
"""

from __future__ import annotations

import itertools

import asyncpg
import msgspec
import pytest

from events import CutoffChanged, Entitlement, Position, PositionsRecorded, VoteRefused, decode_logged, encode
from projections.refusals import refusal_row
from services.adapters.kafka.topics import key_for, producer, publish, publish_raw
from services.read.export import export_meeting
from services.read.offline import verify_file
from services.read.reports import over_vote_report
from services.read.tallies import read_tally
from services.read.verify import verify_meeting
from services.runtime.ingest import Consumed
from services.runtime.ledger import Ledger
from tests.factories import at, cast, revoke, small_meeting
from tests.integration.helpers import append, cli, run_projector, running_ledger, wait_for
from tests.integration.test_answers import answers_settled

pytestmark = pytest.mark.integration

MID = "rf"
X = "Broker X"
COUNT = "SELECT count(*) FROM ledger_log"


def vote(event_id: str, number: str, choices: dict, **fields):
    return cast(number, choices, meeting_id=MID, event_id=f"{MID}-{event_id}", channel="broker", **fields)


def positions(mid: str = MID) -> PositionsRecorded:
    return PositionsRecorded(
        event_id=f"{mid}-register",
        meeting_id=mid,
        chunk=0,
        chunks=1,
        positions=[
            Position(control_number=n, kind="beneficial", shares=s, holders=[f"owner of {n}"], nominee=X)
            for n, s in (("B-1", 3000), ("B-2", 3000), ("B-3", 2000))
        ],
        entitlements=[Entitlement(nominee=X, shares=4000)],
    )


C1 = vote("c1", "B-1", {"2": "for"}, executed=1)
C2 = vote("c2", "B-2", {"2": "against"}, executed=2)
B3 = vote("b3", "B-3", {"2": "for"}, shares=500, executed=1.5)
D3 = vote("d3", "B-3", {"2": "for"}, executed=2.5, discretionary=True)
RV3 = msgspec.structs.replace(revoke("B-3", executed=2, event_id=f"{MID}-rv3"), meeting_id=MID)
STEPS = [[small_meeting(meeting_id=MID, event_id=f"{MID}-meeting", overvote_policy="reject"), positions()]] + [
    [e] for e in (C1, C2, B3, D3, RV3)
]
REFUSED = {C2.event_id, RV3.event_id}  # the rows whose folding refuses an instruction: one more row each


async def log_rows(conn) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT position, event_id, type, decision, reason, control_number, channel, source_topic, source_partition,"
        " source_offset, appended_at, payload::text AS payload FROM ledger_log WHERE meeting_id = $1 ORDER BY position",
        MID,
    )


async def publish_steps(settings, steps) -> int:
    """Publish each step once the previous one is logged; the log's row count afterwards."""
    conn = await asyncpg.connect(settings.pg_dsn)
    n = await conn.fetchval(COUNT)
    await conn.close()
    async with running_ledger(settings), producer(settings) as client:
        for step in steps:
            await publish(client, settings, step)
            n += len(step) + sum(e.event_id in REFUSED for e in step)
            await wait_for(settings.pg_dsn, COUNT, n)
    return n


@pytest.fixture
async def refused(settings):
    """The meeting logged and projected; yields an owner connection."""
    n = await publish_steps(settings, STEPS)
    await run_projector(settings, n)
    conn = await asyncpg.connect(settings.pg_dsn)
    yield conn
    await conn.close()


async def test_the_log_shows_each_refusal_after_the_row_that_caused_it_and_verify_accounts_for_them(refused):
    rows = await log_rows(refused)
    ids = [r["event_id"] for r in rows]
    assert ids[ids.index(C2.event_id) + 1] == f"ledger:refused:{C2.event_id}"
    assert ids[ids.index(RV3.event_id) + 1] == f"ledger:refused:{D3.event_id}"
    assert len(rows) == 2 + 5 + 2
    by_id = {r["event_id"]: r for r in rows}
    assert all(by_id[e.event_id]["decision"] == "accepted" for e in (C1, C2, B3, D3, RV3))  # as they were judged
    refusals = {}
    for refused_id in (C2.event_id, D3.event_id):
        row = by_id[f"ledger:refused:{refused_id}"]
        assert (row["type"], row["decision"], row["reason"], row["channel"]) == (
            "vote.refused",
            "rejected",
            "over_entitlement",
            None,
        )
        assert [row[c] for c in ("source_topic", "source_partition", "source_offset", "appended_at")] == [None] * 4
        refusals[refused_id] = decode_logged(row["payload"])
    assert refusals[C2.event_id] == VoteRefused(
        event_id=f"ledger:refused:{C2.event_id}",
        meeting_id=MID,
        refused_event_id=C2.event_id,
        control_number="B-2",
        nominee=X,
        item="2",
        entitlement=4000,
        attempted=6000,
        counted=3000,
    )
    d3 = refusals[D3.event_id]
    assert (d3.control_number, d3.item, d3.attempted, d3.counted) == ("B-3", "2", 5000, 3000)

    tally = await read_tally(refused, MID)
    assert tally["items"]["2"]["for"] == 3000 and tally["items"]["2"]["against"] == 0
    assert await refused.fetchval("SELECT count(*) FROM projection_failures") == 0  # the projector agreed
    report = await over_vote_report(refused, MID)
    (over,) = report["over_votes"]
    assert (over["rejected"], over["attempted"]) == ([C2.event_id, D3.event_id], 6000)
    assert [(r["event_id"], r["attempted"], r["counted"]) for r in over["refusals"]] == [
        (C2.event_id, 6000, 3000),
        (D3.event_id, 5000, 3000),
    ]

    result = await verify_meeting(refused, MID)
    assert result.ok, result.as_dict()


async def test_audit_verify_and_the_over_vote_report_through_the_cli(settings, refused, tmp_path):
    code, out, err = await cli(settings, "audit", "verify", "--meeting", MID)
    assert code == 0, err
    assert "VERIFIED" in out
    code, out, err = await cli(settings, "report", "overvotes", "--meeting", MID)
    assert code == 0, err
    assert "attempted 6,000" in out and f"{C2.event_id}: attempted 6,000, counted 3,000" in out
    # The refused instruction's history shows the refusal row after it; the rejection report counts it.
    code, out, err = await cli(settings, "audit", "history", "--meeting", MID, "--control-number", "B-2")
    assert code == 0, err
    assert out.index(C2.event_id) < out.index("vote.refused") < out.index("rejected: over_entitlement")
    code, out, err = await cli(settings, "report", "rejections", "--meeting", MID)
    assert code == 0, err
    assert "over_entitlement" in out

    # The refused instruction's receipt (its accepted row, the holder's rows, the refusal row among them)
    # still proves and says it does not count.
    bundle = tmp_path / "c2.json"
    code, out, err = await cli(settings, "audit", "prove", C2.event_id, "--meeting", MID, "--out", str(bundle))
    assert code == 0, err
    code, out, err = await cli(settings, "audit", "receipt", str(bundle))
    assert code == 0, err + out
    assert "VALID receipt" in out and "DOES NOT COUNT: superseded under R17 on item 2" in out


async def test_an_export_verifies_offline_with_its_refusal_rows_and_a_missing_one_is_found(refused, tmp_path):
    path = tmp_path / "rf.zip"
    await export_meeting(refused, MID, path)
    result = verify_file(path)
    assert result.ok, result.as_dict()
    # The refusal row is the log's last: removed, the chain and positions still hold, the refusals do not.
    last = await refused.fetchrow("SELECT position, event_id FROM ledger_log ORDER BY position DESC LIMIT 1")
    assert last["event_id"] == f"ledger:refused:{D3.event_id}"
    await refused.execute("SET session_replication_role = replica")  # as a superuser skipping the guards
    await refused.execute("DELETE FROM ledger_log WHERE position = $1", last["position"])
    result = await verify_meeting(refused, MID)
    assert result.chain_break is None and result.position_gap is None and not result.ok
    assert any(f"{D3.event_id} refused" in p and "no row right after it says so" in p for p in result.problems)


async def test_a_refusal_row_the_fold_does_not_make_is_found_by_verify_and_breaks_the_projection(settings, refused):
    forged = VoteRefused(
        event_id=f"ledger:refused:{C1.event_id}",
        meeting_id=MID,
        refused_event_id=C1.event_id,
        control_number="B-1",
        nominee=X,
        item="2",
        entitlement=4000,
        attempted=7000,
        counted=3000,
    )
    # An untouched log rebuilds: the rebuild's fold refuses what the ledger logged as refused.
    code, _, err = await cli(settings, "projections", "rebuild", "--meeting", MID, "-q")
    assert code == 0, err
    head = await append(refused, [refusal_row(forged)])  # as the log's owner, chained like any row
    result = await verify_meeting(refused, MID)
    assert not result.ok and result.chain_break is None
    assert any(f"{C1.event_id} refused" in p and "not called for by the fold" in p for p in result.problems)
    await run_projector(settings, head)
    failure = await refused.fetchrow("SELECT meeting_id, error FROM projection_failures")
    assert failure["meeting_id"] == MID and f"the fold does not refuse {C1.event_id}" in failure["error"]
    code, out, err = await cli(settings, "projections", "rebuild", "--meeting", MID, "-q")
    assert code != 0 and f"log position {head}" in out + err


async def test_a_restarted_ledger_rebuilds_its_fold_and_a_channels_vote_refused_is_reserved(settings, refused):
    # After a restart the fold is rebuilt from the log: the old refusals are not logged again, and a new
    # over-vote is. B-2 for 1,000: 3,000 + 1,000 = 4,000 fits; then B-3's ballot of 2,000 does not.
    fits = vote("c4", "B-2", {"2": "for"}, shares=1000, executed=4)
    over = vote("c5", "B-3", {"2": "for"}, executed=5)
    REFUSED.add(over.event_id)
    try:
        n = await publish_steps(settings, [[fits], [over]])
    finally:
        REFUSED.discard(over.event_id)
    fake = VoteRefused(
        event_id="rf-fake",
        meeting_id=MID,
        refused_event_id=C1.event_id,
        control_number="B-1",
        nominee=X,
        item="2",
        entitlement=4000,
        attempted=9000,
        counted=0,
    )
    async with running_ledger(settings), producer(settings) as client:
        await publish_raw(client, settings.submissions_topic, [(b"B-1", encode(fake))])
        await publish_raw(
            client, settings.admin_topic, [(MID.encode(), encode(msgspec.structs.replace(fake, event_id="rf-fake-2")))]
        )
        await wait_for(settings.pg_dsn, COUNT, n + 2)
    rows = {r["event_id"]: r for r in await log_rows(refused)}
    assert f"ledger:refused:{fits.event_id}" not in rows
    assert rows[f"ledger:refused:{over.event_id}"]["reason"] == "over_entitlement"
    assert sum(r["type"] == "vote.refused" and r["reason"] == "over_entitlement" for r in rows.values()) == 3
    for event_id in ("rf-fake", "rf-fake-2"):
        assert (rows[event_id]["decision"], rows[event_id]["reason"]) == ("rejected", "reserved_type")
        assert rows[event_id]["source_topic"] is not None
    await run_projector(settings, n + 2)
    assert await refused.fetchval("SELECT count(*) FROM projection_failures") == 0
    result = await verify_meeting(refused, MID)
    assert result.ok, result.as_dict()


async def test_the_channel_gets_one_answer_per_submission_and_none_for_a_refusal_row(settings):
    # B-1 and B-2 (3,000 each) cannot both count under a 4,000 entitlement: whichever the log holds
    # second is refused. Each gets its answer as logged (accepted); the refusal row, from no topic, none.
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, STEPS[0] + [C1, C2])
        await wait_for(settings.pg_dsn, COUNT, 5)
        answers = await answers_settled(settings, 2)
    assert sorted((a.event_id, a.decision, a.reason) for _, _, a in answers) == [
        (C1.event_id, "accepted", None),
        (C2.event_id, "accepted", None),
    ]


async def test_two_ledger_processes_on_one_log_fold_each_others_rows_before_deciding(settings):
    # Ledger A logs the meeting and c1, ledger B (started before any of it) then takes c2: under the append
    # lock B reads A's rows of the reject meeting first, so it refuses c2 as one ledger would.
    a, b = Ledger(settings), Ledger(settings)
    await a.start()
    await b.start()
    offsets = itertools.count()

    def records(*events):
        return [
            Consumed(
                settings.admin_topic if i < 2 and len(events) > 1 else settings.submissions_topic,
                0,
                next(offsets),
                key_for(e),
                encode(e),
            )
            for i, e in enumerate(events)
        ]

    try:
        await a.commit(records(*STEPS[0]), None)
        await a.commit(records(C1), None)
        decided = await b.handle(records(C2), None)
        assert [(r.event_id, r.reason) for r in decided.rows] == [
            (C2.event_id, None),
            (f"ledger:refused:{C2.event_id}", "over_entitlement"),
        ]
        decided = await a.handle(records(B3), None)  # A reads B's rows too: 3,000 + 500 fits, no refusal
        assert [(r.event_id, r.reason) for r in decided.rows] == [(B3.event_id, None)]
    finally:
        await a.stop()
        await b.stop()
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        assert (await verify_meeting(conn, MID)).problems == []
    finally:
        await conn.close()


# /tmp/adv12b s13 (R5 under R17 `reject`): B-2's instruction received after the broker cut-off as amended, but
# logged before the change, took Broker X over and got B-1's on-time instruction refused for good.
def knockout(mid: str, late_first: bool) -> list:
    def broker(event_id, number, choices, executed):
        return cast(number, choices, meeting_id=mid, event_id=f"{mid}-{event_id}", channel="broker", executed=executed)

    late = broker("late", "B-2", {"2": "against"}, 11)  # received after the new cut-off (10), after it took effect
    ontime = broker("ontime", "B-1", {"2": "for"}, 8)
    change = CutoffChanged(
        event_id=f"{mid}-cc1", meeting_id=mid, channel="broker", cutoff=at(10), effective_at=at(9), reason="amended"
    )
    setup = [small_meeting(meeting_id=mid, event_id=f"{mid}-meeting", overvote_policy="reject"), positions(mid)]
    return [setup, *([[late], [ontime], [change]] if late_first else [[change], [late], [ontime]])]


async def test_a_late_logged_cutoff_change_withdraws_the_refusal_a_void_instruction_caused(settings, tmp_path):
    async with running_ledger(settings), producer(settings) as client:
        for mid, late_first in (("rk-later", True), ("rk-first", False)):
            for step in knockout(mid, late_first):
                await publish(client, settings, step)
                for event in step:
                    await wait_for(
                        settings.pg_dsn, "SELECT count(*) FROM ledger_log WHERE event_id = $1", 1, event.event_id
                    )
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        head = await conn.fetchval("SELECT max(position) FROM ledger_log")
        await run_projector(settings, head)
        rows = await conn.fetch(
            "SELECT position, event_id, type, decision, reason, source_topic FROM ledger_log WHERE meeting_id = $1"
            " ORDER BY position",
            "rk-later",
        )
        assert [(r["event_id"], r["type"], r["decision"]) for r in rows][2:] == [
            ("rk-later-late", "vote.cast", "accepted"),
            ("rk-later-ontime", "vote.cast", "accepted"),
            ("ledger:refused:rk-later-ontime", "vote.refused", "rejected"),
            ("rk-later-cc1", "meeting.cutoff_changed", "accepted"),
            ("ledger:reinstated:ledger:refused:rk-later-ontime", "vote.reinstated", "accepted"),
        ]
        assert rows[-1]["source_topic"] is None
        first = await conn.fetch(
            "SELECT event_id, reason FROM ledger_log WHERE meeting_id = 'rk-first' ORDER BY position"
        )
        assert ("rk-first-late", "cutoff_passed") in [(r["event_id"], r["reason"]) for r in first]
        assert not any(r["event_id"].startswith("ledger:") for r in first)
        later, earlier = await read_tally(conn, "rk-later"), await read_tally(conn, "rk-first")
        assert later["items"] == earlier["items"] and later["items"]["2"]["for"] == 3000
        assert later["items"]["2"]["against"] == 0
        assert (await over_vote_report(conn, "rk-later"))["over_votes"] == []  # nothing refused in force
        assert await conn.fetchval("SELECT count(*) FROM projection_failures") == 0  # the projector agreed
        for mid in ("rk-later", "rk-first"):
            result = await verify_meeting(conn, mid)
            assert result.ok, result.as_dict()
            path = tmp_path / f"{mid}.zip"
            await export_meeting(conn, mid, path)
            assert verify_file(path).ok
        code, out, err = await cli(settings, "audit", "verify", "--meeting", "rk-later")
        assert code == 0 and "VERIFIED" in out, err
        code, _, err = await cli(settings, "projections", "rebuild", "--meeting", "rk-later", "-q")
        assert code == 0, err
        code, out, err = await cli(settings, "audit", "history", "--meeting", "rk-later", "--control-number", "B-1")
        assert code == 0, err
        assert out.index("vote.refused") < out.index("vote.reinstated")
        # The withdrawal deleted (the meeting's last row: its chain still holds), verify finds it missing.
        await conn.execute("SET session_replication_role = replica")  # as a superuser skipping the guards
        await conn.execute("DELETE FROM ledger_log WHERE position = $1", rows[-1]["position"])
        result = await verify_meeting(conn, "rk-later")
        assert result.chain_break is None and not result.ok
        assert any("reinstated" in p and "no row right after it says so" in p for p in result.problems), result.problems
    finally:
        await conn.close()

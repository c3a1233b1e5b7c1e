"""Amendments through the broker, the ledger, the projector and the CLI (issue 12): an adjournment, changed
cut-offs (the broker platform's among them) and a corrected recommendation, each logged after votes it concerns,
replayable, and shown by `tally --as-of` and `audit history`."""

from __future__ import annotations

import json

import asyncpg
import msgspec
import pytest

from events import CutoffChanged, Cutoffs, ItemCorrected, MeetingAdjourned, MeetingCorrected
from services.adapters.kafka.topics import producer, publish
from tests.factories import at, cast, register_event, small_meeting
from tests.integration.helpers import cli, running_ledger, running_projector, snapshot, wait_for

pytestmark = pytest.mark.integration

SPEC = small_meeting(cutoffs=Cutoffs(internet=at(8), phone=at(8), mail=at(9), broker=at(7)))
HEAD = "SELECT coalesce(max(position), 0) FROM ledger_log"
CHECKPOINT = "SELECT position FROM projection_checkpoints"
VOTES = [
    cast("R-1", {"2": "against"}, executed=1),  # leaves item 3 to the recommendation in force at 1 h (R9)
    cast("R-2", {"2": "against"}, executed=6),  # internet, received 6 h: late once the cut-off moves to 5 h
    cast("B-1", {"2": "against"}, executed=6.5, channel="broker"),  # late once the broker's moves to 6 h
    cast("B-2", {"2": "for"}, executed=3, channel="broker"),  # before either change took effect: stands
]


async def fetch(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def publish_amendments(settings, *amendments) -> None:
    """Publish amendments as a simulation's meeting administration would, recorded when they take effect."""
    stamped = [msgspec.structs.replace(a, recorded_at=a.effective_at) for a in amendments]
    async with producer(settings, "admin") as admin:
        await publish(admin, settings, stamped)


async def amend(settings, *args: str) -> tuple[int, str]:
    code, out, err = await cli(settings, "meeting", "amend", *args, "--meeting", "m1")
    return code, out + err


async def test_amendments_logged_after_the_votes_change_the_tally_as_if_they_had_come_first(settings, tmp_path):
    async with running_ledger(settings), running_projector(settings):
        async with producer(settings, "admin") as admin:
            await publish(admin, settings, [SPEC, register_event()])
        await wait_for(settings.pg_dsn, HEAD, 2)
        async with producer(settings) as channel:
            await publish(channel, settings, VOTES)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log WHERE decision = 'accepted'", 6)
        await wait_for(settings.pg_dsn, CHECKPOINT, 6)
        code, before, err = await cli(settings, "tally", "--meeting", "m1", "--json")
        assert code == 0, err
        assert json.loads(before)["items"]["2"]["against"] == 3000 + 1000 + 2000 and "meeting" not in json.loads(before)

        # Each amendment, as meeting administration recorded it when it took effect in this simulated 2023 meeting
        # (the broker's clock is off: the judge reads recorded_at, and an amendment may not take effect before it).
        # `meeting amend` stamps today's time, so it could not publish these (test_amendment_backdating.py).
        await publish_amendments(
            settings,
            CutoffChanged(event_id="cut-b", meeting_id="m1", channel="broker", cutoff=at(6), effective_at=at(5)),
            CutoffChanged(
                event_id="cut-i",
                meeting_id="m1",
                channel="internet",
                cutoff=at(5),
                effective_at=at(4),
                reason="printer's error",
            ),
            MeetingCorrected(
                event_id="fix",
                meeting_id="m1",
                effective_at=at(0.5),
                items=[ItemCorrected(id="3", title="Equity plan", recommendation="against")],
            ),
            MeetingAdjourned(
                event_id="adj", meeting_id="m1", meeting_at=at(24 * 40), postponed=True, effective_at=at(7)
            ),
        )
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log WHERE decision = 'accepted'", 10)
        # Refused by `meeting amend`, with the ledger's reason, exit 1; a command-line mistake is argparse's, exit 2.
        code, out = await amend(settings, "correct", "--recommendation", "2=maybe")
        assert code == 1 and out.rstrip().endswith("rejected invalid_choice"), out
        code, out = await amend(settings, "adjourn", "--to", at(-24 * 30).isoformat())
        assert code == 1 and out.rstrip().endswith("rejected invalid_amendment"), out
        code, out = await amend(settings, "correct", "--recommendation", "9=for")
        assert code == 1 and out.rstrip().endswith("rejected unknown_item"), out
        code, out = await amend(settings, "cutoff", "--channel", "fax", "--lift")
        assert code == 2 and out.rstrip().endswith(
            "invalid choice: 'fax' (choose from 'internet', 'phone', 'mail', 'broker')"
        ), out
        await wait_for(settings.pg_dsn, HEAD, 13)
        await wait_for(settings.pg_dsn, CHECKPOINT, 13)

        code, live, err = await cli(settings, "tally", "--meeting", "m1", "--json")
        assert code == 0, err
        code, replayed, err = await cli(settings, "tally", "--meeting", "m1", "--json", "--as-of", "13")
        assert code == 0, err
        code, earlier, err = await cli(settings, "tally", "--meeting", "m1", "--json", "--as-of", "7")
        assert code == 0, err
        code, table, err = await cli(settings, "tally", "--meeting", "m1", "--as-of", "13")
        assert code == 0, err
        code, history, err = await cli(settings, "audit", "history", "--meeting", "m1", "--control-number", "R-2")
        assert code == 0, err
        code, report, err = await cli(settings, "report", "final", "--meeting", "m1", "--format", "md")
        assert code == 0, err
        code, live_report, err = await cli(settings, "report", "final", "--meeting", "m1", "--json")
        assert code == 0, err
        code, _, err = await cli(settings, "export", "--meeting", "m1", "--out", str(tmp_path / "m1.zip"))
        assert code == 0, err
        code, file_report, err = await cli(settings, "report", "final", "--file", str(tmp_path / "m1.zip"), "--json")
        assert code == 0, err
        assert json.loads(file_report) == json.loads(live_report)  # an auditor's replay of the export agrees
        for source in (("--meeting", "m1"), ("--file", str(tmp_path / "m1.zip"))):  # decisions re-judged in log order
            code, out, err = await cli(settings, "audit", "verify", *source, "--no-heads")
            assert code == 0 and "VERIFIED" in out, out + err
        assert json.loads(live_report)["as_amended"]["original_meeting_at"] == SPEC.meeting_at.isoformat()
        tables = await snapshot(settings.pg_dsn)
        code, _, err = await cli(settings, "projections", "rebuild", "--meeting", "m1")
        assert code == 0, err
        assert await snapshot(settings.pg_dsn) == tables  # replayed from the log, the same tables

    live, replayed, earlier = json.loads(live), json.loads(replayed), json.loads(earlier)
    assert {k: v for k, v in live.items() if k != "as_of_position"} == {
        k: v for k, v in replayed.items() if k != "as_of_position"
    }
    # R-2 (internet, received 6 h) and B-1 (broker, 6.5 h) no longer count; R-1 and B-2 stand.
    assert live["items"]["2"]["against"] == 3000 and live["items"]["2"]["for"] == 4000
    assert live["items"]["3"]["against"] == 3000  # R-1's card, executed after the corrected recommendation
    # As of position 7 only the broker's cut-off had changed: B-1 out, R-2 still in.
    assert earlier["items"]["2"]["against"] == 3000 + 1000 and len(earlier["meeting"]["amendments"]) == 1
    assert live["meeting"]["meeting_at"] == at(24 * 40).isoformat()
    assert live["meeting"]["cutoffs"]["broker"] == at(6).isoformat()
    assert [a["type"] for a in live["meeting"]["amendments"]] == [
        "meeting.cutoff_changed",
        "meeting.cutoff_changed",
        "meeting.corrected",
        "meeting.adjourned",
    ]
    assert "Meeting date: 2023-12-11T09:00:00+08:00 (as amended; originally 2023-12-01T09:00:00+08:00)" in table
    assert "#8 meeting.cutoff_changed effective 2023-11-01T13:00:00+08:00: internet cut-off" in table
    r2 = next(line for line in history.splitlines() if "vote.cast" in line)
    assert "R12" in r2 and "Amendments (4):" in history
    assert "(as amended; originally 2023-12-01 09:00+08:00)" in report and "## Amendments" in report
    assert "| 3 | Equity plan |" in report


async def test_amendments_logged_before_the_votes_give_the_same_tally_and_the_judge_refuses_the_late_ones(settings):
    amendments = [
        CutoffChanged(event_id="cut-b", meeting_id="m1", channel="broker", cutoff=at(6), effective_at=at(5)),
        CutoffChanged(event_id="cut-i", meeting_id="m1", channel="internet", cutoff=at(5), effective_at=at(4)),
        MeetingCorrected(
            event_id="fix",
            meeting_id="m1",
            effective_at=at(0.5),
            items=[ItemCorrected(id="3", recommendation="against")],
        ),
    ]
    async with running_ledger(settings), running_projector(settings):
        async with producer(settings, "admin") as admin:
            await publish(admin, settings, [SPEC, register_event(), *amendments])
        await wait_for(settings.pg_dsn, HEAD, 5)
        async with producer(settings) as channel:
            await publish(channel, settings, VOTES)
        await wait_for(settings.pg_dsn, HEAD, 9)
        await wait_for(settings.pg_dsn, CHECKPOINT, 9)
        code, live, err = await cli(settings, "tally", "--meeting", "m1", "--json")
        assert code == 0, err
    refused = await fetch(
        settings.pg_dsn, "SELECT control_number, reason FROM ledger_log WHERE decision = 'rejected' ORDER BY 1"
    )
    assert [tuple(r) for r in refused] == [("B-1", "cutoff_passed"), ("R-2", "cutoff_passed")]
    live = json.loads(live)
    assert live["items"]["2"]["against"] == 3000 and live["items"]["2"]["for"] == 4000
    assert live["items"]["3"]["against"] == 3000

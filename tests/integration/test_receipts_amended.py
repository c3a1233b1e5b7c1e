"""Receipts of a meeting amended after the votes (issue 12): a cut-off moved earlier, logged through Kafka after
an internet vote it makes late, is carried in the bundle, so the holder's offline check says what the tally says."""

import json

import pytest

from events import CutoffChanged, Cutoffs, ItemCorrected, MeetingCorrected
from services.adapters.kafka.topics import producer, publish
from tests.factories import at, cast, register_event, small_meeting
from tests.integration.helpers import cli, running_ledger, running_projector, wait_for
from tests.integration.test_receipts import offline

pytestmark = pytest.mark.integration

SPEC = small_meeting(cutoffs=Cutoffs(internet=at(8), phone=at(8)))
LATE = cast("R-1", {"2": "against"}, executed=6, event_id="internet/R-1/six")  # received 6 h
STANDS = cast("R-2", {"2": "for"}, executed=3, event_id="internet/R-2/three")  # before the change took effect
AMENDMENTS = [
    CutoffChanged(event_id="cut", meeting_id="m1", channel="internet", cutoff=at(5), effective_at=at(4)),
    MeetingCorrected(
        event_id="fix", meeting_id="m1", effective_at=at(1), items=[ItemCorrected(id="3", recommendation="against")]
    ),
]


async def test_a_vote_a_later_logged_cut_off_makes_late_does_not_count_on_its_receipt_live_or_from_an_export(
    settings, tmp_path
):
    async with running_ledger(settings), running_projector(settings):
        async with producer(settings, "admin") as admin:
            await publish(admin, settings, [SPEC, register_event()])
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2)
            async with producer(settings) as channel:
                await publish(channel, settings, [LATE, STANDS])
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 4)
            await publish(admin, settings, AMENDMENTS)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log WHERE decision = 'accepted'", 6)
        await wait_for(settings.pg_dsn, "SELECT position FROM projection_checkpoints", 6)
    code, out, err = await cli(settings, "tally", "--meeting", "m1", "--json")
    item = json.loads(out)["items"]["2"]
    assert code == 0 and (item["for"], item["against"]) == (1000, 0), out + err  # R-1's vote is dropped (R12)

    export, live, from_file = tmp_path / "m1.zip", tmp_path / "live.json", tmp_path / "file.json"
    code, _out, err = await cli(settings, "export", "--meeting", "m1", "--out", str(export))
    assert code == 0, err
    for args, bundle in (((), live), (("--file", str(export)), from_file)):
        code, _out, err = await cli(
            settings, "audit", "prove", LATE.event_id, "--head-size", "6", *args, "--out", str(bundle)
        )
        assert code == 0, err
    assert live.read_bytes() == from_file.read_bytes()
    carried = [row["type"] for row in json.loads(live.read_text())["meeting"]]
    assert carried == ["meeting.scheduled", "meeting.cutoff_changed", "meeting.corrected"]
    code, out, err = await offline("audit", "receipt", str(live))
    assert code == 0 and "DOES NOT COUNT: superseded under R12" in out, out + err
    code, out, err = await cli(settings, "audit", "history", "--meeting", "m1", "--control-number", "R-1", "--json")
    assert code == 0, err
    (row,) = [r for r in json.loads(out)["rows"] if r["event_id"] == LATE.event_id]
    assert (row["status"], row["rule"]) == ("superseded", "R12")  # the receipt and audit history agree

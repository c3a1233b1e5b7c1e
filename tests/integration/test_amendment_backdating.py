"""Back-dated amendments through the broker, the ledger, the projector and `meeting amend` (issue 12, adversarial run):
after an item's polls closed, a correction and a cut-off back-dated a month changed its result and audit verify said
VERIFIED. Now each is logged rejected invalid_amendment on the broker's clock, a current one is accepted, and an admin
record keyed by another meeting is rejected key_mismatch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from events import CutoffChanged, Cutoffs, MeetingCorrected, PollsClosed, encode
from services.adapters.kafka.topics import producer, publish, publish_raw
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import cli, running_ledger, running_projector, wait_for

pytestmark = pytest.mark.integration

HEAD = "SELECT coalesce(max(position), 0) FROM ledger_log"


async def amend(settings, *args: str) -> tuple[int, str]:
    code, out, err = await cli(settings, "meeting", "amend", *args, "--meeting", "m1")
    return code, out + err


async def test_back_dated_amendments_are_refused_invalid_amendment_and_change_nothing_a_current_one_is_accepted(
    settings, tmp_path
):
    now = datetime.now(UTC)
    spec = small_meeting(
        meeting_at=now + timedelta(days=1),
        cutoffs=Cutoffs(internet=now + timedelta(hours=2), phone=now + timedelta(hours=2)),
        broker_grace_s=60,
    )
    # R-1's card leaves item 3 to the board's recommendation in force when it was executed ("for", R9).
    vote = msgspec.structs.replace(
        cast("R-1", {"2": "against"}), executed_at=now - timedelta(minutes=10), received_at=now - timedelta(minutes=10)
    )
    month_earlier, day_earlier = now - timedelta(days=30), now - timedelta(days=1)
    raw = CutoffChanged(  # as the adversarial run published it: no recorded_at, so the broker's clock decides
        event_id="raw-cut", meeting_id="m1", channel="internet", cutoff=day_earlier, effective_at=month_earlier
    )
    keyed_elsewhere = MeetingCorrected(
        event_id="keyed", meeting_id="m1", effective_at=now + timedelta(hours=1), title="X"
    )
    async with running_ledger(settings), running_projector(settings):
        async with producer(settings, "admin") as admin:
            await publish(admin, settings, [spec, register_event()])
        await wait_for(settings.pg_dsn, HEAD, 2)
        async with producer(settings) as channel:
            await publish(channel, settings, [vote])
        await wait_for(settings.pg_dsn, HEAD, 3)
        async with producer(settings, "admin") as admin:
            await publish(
                admin, settings, [PollsClosed(event_id="close-3", meeting_id="m1", closed_at=now, items=["3"])]
            )
        await wait_for(settings.pg_dsn, HEAD, 4)

        code, out = await amend(
            settings, "correct", "--recommendation", "3=against", "--effective-at", month_earlier.isoformat()
        )
        assert code == 1 and out.rstrip().endswith("rejected invalid_amendment"), out
        code, out = await amend(
            settings,
            "cutoff",
            "--channel",
            "internet",
            "--cutoff",
            day_earlier.isoformat(),
            "--effective-at",
            (now - timedelta(days=2)).isoformat(),
        )
        assert code == 1 and out.rstrip().endswith("rejected invalid_amendment"), out
        async with producer(settings, "admin") as admin:
            await publish(admin, settings, [raw])
            await publish_raw(admin, settings.admin_topic, [(b"m2", encode(keyed_elsewhere))])
        await wait_for(settings.pg_dsn, HEAD, 8)
        later = now + timedelta(hours=3)
        code, out = await amend(settings, "cutoff", "--channel", "internet", "--cutoff", later.isoformat())
        assert code == 0 and "accepted at position 9" in out, out
        await wait_for(settings.pg_dsn, "SELECT position FROM projection_checkpoints", 9)
        code, tally, err = await cli(settings, "tally", "--meeting", "m1", "--json")
        assert code == 0, err
        code, _, err = await cli(settings, "export", "--meeting", "m1", "--out", str(tmp_path / "m1.zip"))
        assert code == 0, err
        for source in (
            ("--meeting", "m1"),
            ("--file", str(tmp_path / "m1.zip")),
        ):  # re-judged on each row's broker time
            code, verified, err = await cli(settings, "audit", "verify", *source, "--no-heads")
            assert code == 0 and "VERIFIED" in verified, verified + err

    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        rows = await conn.fetch("SELECT position, event_id, decision, reason, appended_at FROM ledger_log ORDER BY 1")
    finally:
        await conn.close()
    assert [(r["decision"], r["reason"]) for r in rows[4:]] == [
        ("rejected", "invalid_amendment"),
        ("rejected", "invalid_amendment"),
        ("rejected", "invalid_amendment"),
        ("rejected", "key_mismatch"),
        ("accepted", None),
    ]
    assert rows[6]["event_id"] == "raw-cut" and all(r["appended_at"] is not None for r in rows)  # both topics stamped
    tally = json.loads(tally)
    assert tally["items"]["3"]["for"] == 3000 and tally["items"]["3"]["against"] == 0  # R9 as the card said
    assert tally["items"]["2"]["against"] == 3000
    amended = tally["meeting"]
    assert [a["type"] for a in amended["amendments"]] == ["meeting.cutoff_changed"]
    assert datetime.fromisoformat(amended["cutoffs"]["internet"]) == later

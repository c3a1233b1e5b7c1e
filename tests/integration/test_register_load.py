"""A real register loaded with `meeting load FILE --register DIR`, through Kafka, the ledger and the projector.

The example register of deploy/meetings/ (alder-2025-agm): a load with a broken file publishes nothing;
the good one is logged as the meeting (declaring its register) and one chunk; votes on it, its
over-reported participant's among them, are tallied and its over-vote prorated (R17). A register of long
joint holders' names goes in chunks split by size, each accepted by Kafka and the ledger.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import msgspec
import pytest

from events import VoteCast
from services.adapters.kafka.topics import producer, publish
from services.registers.build import load_register
from tests.integration.helpers import cli, run_cli, run_projector, running_ledger, wait_for

pytestmark = pytest.mark.integration

MEETINGS = Path(__file__).resolve().parents[2] / "deploy" / "meetings"
REGISTER = MEETINGS / "alder-2025-agm-register"
ROWS = "SELECT count(*) FROM ledger_log WHERE meeting_id = 'alder-2025-agm'"
EASTERN = timezone(timedelta(hours=-4))


def replayable_meeting(tmp_path: Path) -> Path:
    """The example meeting, taking unsigned votes of 2025 today: signatures and the broker's clock off."""
    text = (MEETINGS / "alder-2025-agm.toml").read_text()
    anchor = 'overvote_policy = "prorate"\n'
    assert anchor in text
    path = tmp_path / "alder-2025-agm.toml"
    path.write_text(text.replace(anchor, anchor + 'signatures_required = false\nbroker_grace_s = "off"\n'))
    return path


def vote(number: str, channel: str, choices: dict, day: int) -> VoteCast:
    """An instruction executed and received in May 2025, before the cut-off."""
    when = datetime(2025, 5, day, 10, 0, tzinfo=EASTERN)
    return VoteCast(
        event_id=f"alder-vote-{number}",
        meeting_id="alder-2025-agm",
        control_number=number,
        channel=channel,
        submitted_by="test",
        executed_at=when,
        received_at=when + timedelta(minutes=5),
        choices=choices,
    )


async def test_a_real_register_loads_with_one_command_and_its_over_reported_participant_is_prorated(settings, tmp_path):
    meeting = replayable_meeting(tmp_path)
    broken = Path(shutil.copytree(REGISTER, tmp_path / "broken"))
    dtc = broken / "dtc_positions.csv"
    dtc.write_text(dtc.read_text().replace("0226,Fairmont Clearing Corp.,2118000", "0226,Fairmont Clearing Corp.,"))
    loaded = load_register(meeting, REGISTER)
    (chunk,) = loaded.chunks
    northgate = [p for p in chunk.positions if p.nominee == "Northgate Brokerage, Inc. (DTC 0164)"]
    harbor = [p for p in chunk.positions if p.nominee == "Harbor Securities LLC (DTC 0015)"]
    founder = next(p for p in chunk.positions if p.holders == ["Margaret L. Okonkwo"])

    async with running_ledger(settings):
        code, out, err = await cli(settings, "meeting", "load", str(meeting), "--register", str(broken), "--quiet")
        assert (code, out) == (2, "")
        assert err.splitlines() == [
            f"{dtc}:4:3: shares: empty",
            f"vote-ledger: register {broken}: 1 problem(s); nothing published",
        ]

        code, out, err = await cli(settings, "meeting", "load", str(meeting), "--register", str(REGISTER), "--quiet")
        assert code == 0, err
        assert "0164 Northgate Brokerage, Inc." in out and "+2,500  OVER" in out
        assert (
            f"published meeting alder-2025-agm (event {loaded.meeting.event_id}) and 1 register chunks: "
            "39 positions, 12,476,500 shares"
        ) in out
        # Same partition (the meeting id is the key): had the broken load published anything, it would be
        # logged before these two rows.
        await wait_for(settings.pg_dsn, ROWS, 2)
        accepted = f"{ROWS} AND decision = 'accepted' AND event_id = ANY($1::text[])"
        await wait_for(settings.pg_dsn, accepted, 2, [loaded.meeting.event_id, chunk.event_id])

        votes = [vote(founder.control_number, "internet", {"1.1": "for", "2": "for", "3": "against"}, 12)]
        votes += [vote(p.control_number, "broker", {"2": "for", "3": "for"}, 20) for p in northgate]
        votes += [vote(p.control_number, "broker", {"1.1": "for", "2": "against"}, 21) for p in harbor]
        async with producer(settings) as client:
            await publish(client, settings, votes)
        await wait_for(settings.pg_dsn, f"{ROWS} AND decision = 'accepted'", 2 + len(votes))
    await run_projector(settings, 2 + len(votes))

    tally = json.loads(await run_cli(settings, "tally", "--meeting", "alder-2025-agm", "--json"))
    items = tally["items"]
    # Northgate's owners instructed 2,707,650 shares; its DTC entitlement is 2,705,150 (R17 prorate).
    assert sum(p.shares for p in northgate) == 2_707_650
    assert tally["quorum"]["present"] == founder.shares + 2_707_650 + 3_812_400  # R14: present, books in full
    assert (items["2"]["for"], items["2"]["against"]) == (founder.shares + 2_705_150, 3_812_400)
    assert (items["3"]["for"], items["3"]["against"]) == (2_705_150, founder.shares)
    assert (items["1.1"]["for"], items["1.1"]["outcome"]) == (founder.shares + 3_812_400, "elected")
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        logged = await conn.fetchval("SELECT payload FROM ledger_log WHERE type = 'meeting.scheduled'")
    finally:
        await conn.close()
    declared = json.loads(logged)["register"]  # what a complete register is, as the meeting declares it
    assert declared == msgspec.to_builtins(loaded.meeting.register)
    assert (declared["chunks"], declared["positions"], declared["shares"]) == (1, 39, 12_476_500)
    overvotes = json.loads(await run_cli(settings, "report", "overvotes", "--meeting", "alder-2025-agm", "--json"))
    assert [
        (o["item_id"], o["nominee"], o["entitlement"], o["voted"], o["counted"]) for o in overvotes["over_votes"]
    ] == [
        ("2", "Northgate Brokerage, Inc. (DTC 0164)", 2_705_150, {"for": 2_707_650}, {"for": 2_705_150}),
        ("3", "Northgate Brokerage, Inc. (DTC 0164)", 2_705_150, {"for": 2_707_650}, {"for": 2_705_150}),
    ]


async def test_a_register_of_long_joint_holder_names_loads_in_chunks_kafka_accepts_and_completes(settings, tmp_path):
    # 2,000 holdings of three 200-character joint holders: by count alone one chunk of 1.4 MB, which the
    # producer refused (over Kafka's 1 MiB default) after meeting.scheduled was published.
    names = "; ".join(c * 200 for c in "ABC")
    register = tmp_path / "long-names"
    register.mkdir()
    holdings = "".join(f"R-{n:05d},{names},1\n" for n in range(2000))
    (register / "registered.csv").write_text(f"control_number,holders,shares\n{holdings}CEDE-1,Cede & Co.,1\n")
    (register / "dtc_positions.csv").write_text("participant,name,shares\n15,Harbor Securities LLC,1\n")
    (register / "beneficial.csv").write_text("control_number,participant,shares\nB-1,15,1\n")
    meeting = replayable_meeting(tmp_path)
    meeting.write_text(meeting.read_text().replace("outstanding = 12480000", "outstanding = 2001"))
    loaded = load_register(meeting, register)
    assert [len(c.positions) for c in loaded.chunks] == [1292, 709]

    async with running_ledger(settings):
        code, out, err = await cli(settings, "meeting", "load", str(meeting), "--register", str(register), "--quiet")
        assert code == 0, err
        assert "and 2 register chunks: 2001 positions, 2,001 shares" in out
        accepted = f"{ROWS} AND decision = 'accepted' AND event_id = ANY($1::text[])"
        await wait_for(settings.pg_dsn, accepted, 3, [e.event_id for e in loaded.events])
    await run_projector(settings, 3)
    register_state = json.loads(await run_cli(settings, "tally", "--meeting", "alder-2025-agm", "--json"))["register"]
    assert register_state["complete"] is True
    assert register_state["declared"] == msgspec.to_builtins(loaded.meeting.register)
    assert (register_state["chunks_recorded"], register_state["positions"], register_state["shares"]) == (2, 2001, 2001)

"""The reports on real Kafka and PostgreSQL: final report (8-K Item 5.07), over-votes, rejections, digest."""

import csv
import hashlib
import io
import json

import asyncpg
import msgspec
import pytest

from events import Entitlement, encode
from services.adapters.kafka.topics import producer, publish, publish_raw
from services.adapters.postgres.connect import READER_ROLE, connect
from services.read.reports import over_vote_report, read_final_report, rejection_report
from tests.factories import cast, register_event, small_meeting
from tests.integration.helpers import run_cli, run_projector, running_ledger, wait_for

pytestmark = pytest.mark.integration


def register_with_entitlement(shares: int):
    """small_meeting()'s register, but Broker X's DTC entitlement is ``shares`` (B-1 + B-2 hold 6,000)."""
    return msgspec.structs.replace(register_event(), entitlements=[Entitlement(nominee="Broker X", shares=shares)])


VOTES = [
    cast("R-1", {"1.1": "for", "1.2": "for", "2": "for", "3": "for", "5": "3y"}),
    cast("R-2", {"3": "against"}, channel="phone", shares=333),  # R2 partial; R9 votes the rest as the board
    cast("B-1", {"1.1": "for", "2": "for", "3": "for", "5": "1y"}, channel="broker"),  # 1.2: broker non-vote
    cast("B-2", {"1.1": "against", "2": "for", "3": {"for": 3000, "against": 1000}}, channel="broker"),
]
REJECTED = [
    cast("R-1", {"2": "against"}, executed=0.5, channel="mail"),  # R11: unsigned
    cast("X-1", {"2": "for"}),  # R1: not_entitled
]


async def independent_digest(dsn: str, published, up_to: int) -> str:
    """SHA-256 of the canonical rows, built from the bytes we published and the log's decisions."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT position, event_id, decision, reason FROM ledger_log"
            " WHERE meeting_id = 'm1' AND position <= $1 ORDER BY position",
            up_to,
        )
    finally:
        await conn.close()
    sent = {event.event_id: encode(event) for event in published}
    h = hashlib.sha256()
    for r in rows:
        h.update(
            f"{r['position']}\t{r['event_id']}\t{r['decision']}\t{r['reason'] or ''}\t".encode()
            + sent[r["event_id"]]
            + b"\n"
        )
    return "sha256:" + h.hexdigest()


async def test_the_final_report_counts_prorated_over_votes_and_its_digest_matches_an_independent_one(settings):
    published = [small_meeting(), register_with_entitlement(5000)] + VOTES + REJECTED
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, published)
        await publish_raw(client, settings.submissions_topic, [(b"R-1", b"not json")])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(published))
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_parked", 1)
    await run_projector(settings, len(published))

    report = json.loads(await run_cli(settings, "report", "final", "--meeting", "m1", "--format", "json"))
    assert report["quorum"] == {
        "fraction": "1/3",
        "required": 3334,
        "present": 9333,
        "met": True,
        "present_percent": "93.33",
    }
    # Broker X voted 6,000 against its 5,000 entitlement on 1.1, 2 and 3: prorated by largest remainder.
    columns = {
        item_id: {k: v for k, v in row.items() if k not in ("title", "kind")}
        for item_id, row in report["items"].items()
    }
    assert columns == {
        "1.1": {"for": 3000 + 333 + 1667, "against": 3333, "abstain": 0, "broker_non_votes": 0, "outcome": "elected"},
        "1.2": {"for": 3333, "against": 0, "abstain": 0, "broker_non_votes": 6000, "outcome": "elected"},
        "2": {"for": 3000 + 333 + 5000, "against": 0, "abstain": 0, "broker_non_votes": 0, "outcome": "passed"},
        "3": {"for": 3000 + 4167, "against": 333 + 833, "abstain": 0, "broker_non_votes": 0, "outcome": "passed"},
        "5": {"1y": 2000, "2y": 0, "3y": 3333, "abstain": 0, "broker_non_votes": 4000, "outcome": "3y"},
    }
    assert report["items"]["1.2"]["title"] == "Director B" and report["items"]["5"]["kind"] == "frequency"
    assert report["log"]["position"] == len(published)
    assert report["log"]["digest"] == await independent_digest(settings.pg_dsn, published, len(published))

    markdown = await run_cli(settings, "report", "final", "--meeting", "m1")
    assert "| 1.1 | Director A | 5,000 | 3,333 | 0 | 0 | elected |" in markdown
    assert f"_Computed at log position {len(published)}, digest {report['log']['digest']}._\n" in markdown
    assert markdown.endswith(f"`vote-ledger audit verify --expect-hash {report['log']['chain']}`)._\n")
    rows = list(
        csv.DictReader(io.StringIO(await run_cli(settings, "report", "final", "--meeting", "m1", "--format", "csv")))
    )
    assert [(r["item"], r["for"], r["3y"], r["outcome"]) for r in rows] == [
        ("1.1", "5000", "", "elected"),
        ("1.2", "3333", "", "elected"),
        ("2", "8333", "", "passed"),
        ("3", "7167", "", "passed"),
        ("5", "", "3333", "3y"),
    ]

    conn = await connect(settings.pg_dsn, READER_ROLE)
    try:
        overvotes = await over_vote_report(conn, "m1")
        rejections = await rejection_report(conn, "m1", examples=1)
        assert await read_final_report(conn, "m1") == report
    finally:
        await conn.close()
    assert overvotes["policy"] == "prorate" and overvotes["as_of_position"] == len(published)
    assert [
        (o["item_id"], o["nominee"], o["entitlement"], o["voted"], o["counted"], o["rejected"])
        for o in overvotes["over_votes"]
    ] == [
        ("1.1", "Broker X", 5000, {"for": 2000, "against": 4000}, {"for": 1667, "against": 3333}, []),
        ("2", "Broker X", 5000, {"for": 6000}, {"for": 5000}, []),
        ("3", "Broker X", 5000, {"for": 5000, "against": 1000}, {"for": 4167, "against": 833}, []),
    ]
    assert json.loads(await run_cli(settings, "report", "overvotes", "--meeting", "m1", "--json")) == overvotes

    assert rejections["rejected"] == 2 and rejections["parked_overall"] == 1
    examples = {
        r["reason"]: (r["count"], [(e["event_id"], e["control_number"], e["channel"]) for e in r["examples"]])
        for r in rejections["reasons"]
    }
    assert examples == {
        "not_entitled": (1, [(REJECTED[1].event_id, "X-1", "internet")]),
        "unsigned": (1, [(REJECTED[0].event_id, "R-1", "mail")]),
    }
    assert all(e["position"] and e["received_at"] for r in rejections["reasons"] for e in r["examples"])
    table = await run_cli(settings, "report", "rejections", "--meeting", "m1")
    assert "2 rejected; parked messages (all meetings): 1" in table and "unsigned" in table


async def test_under_the_reject_policy_the_over_vote_report_lists_the_refused_instruction(settings):
    # B-2's 4,000 alone exceed the 3,000 entitlement, so it is refused whatever the arrival order.
    b1 = cast("B-1", {"1.1": "for"}, channel="broker")
    b2 = cast("B-2", {"1.1": "for"}, channel="broker")
    published = [small_meeting(overvote_policy="reject"), register_with_entitlement(3000), b1, b2]
    rows = len(published) + 1  # R19: the ledger logs the refusal as a vote.refused row after b2's
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, published)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", rows)
    await run_projector(settings, rows)

    printed = json.loads(await run_cli(settings, "report", "overvotes", "--meeting", "m1", "--json"))
    assert printed["policy"] == "reject"
    # What b2 attempted: B-1's 2,000 counted or not yet, as the partitions ordered the two in the log.
    (refusal,) = printed["over_votes"][0].pop("refusals")
    assert (refusal["event_id"], refusal["control_number"]) == (b2.event_id, "B-2")
    assert refusal["attempted"] - refusal["counted"] == 4000 and refusal["counted"] in (0, 2000)
    assert printed["over_votes"][0].pop("attempted") == refusal["attempted"]
    assert printed["over_votes"] == [
        {
            "nominee": "Broker X",
            "item_id": "1.1",
            "entitlement": 3000,
            "voted": {"for": 2000},
            "counted": {"for": 2000},
            "policy": "reject",
            "rejected": [b2.event_id],
        }
    ]
    assert f"refused instructions: {b2.event_id}" in await run_cli(settings, "report", "overvotes", "--meeting", "m1")
    final = json.loads(await run_cli(settings, "report", "final", "--meeting", "m1", "--format", "json"))
    assert final["quorum"]["present"] == 2000 and final["items"]["1.1"]["for"] == 2000

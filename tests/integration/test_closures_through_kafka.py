"""R12 per item and R6 attendance through the public path: Kafka -> ledger -> log -> projector -> tally.

Item 3 closes before the others. Position sizes are distinct powers of two (x100), so a sum names the
positions it contains; every expected number is worked out in the comments.
"""

from __future__ import annotations

import asyncpg
import pytest

from events import PollsClosed, Position
from services.adapters.kafka.topics import producer, publish
from services.read.audit import read_history
from tests.factories import at, small_meeting
from tests.integration.helpers import cli, run_projector, running_ledger, snapshot, wait_for
from tests.integration.test_rules_through_kafka import (
    COUNT,
    OK,
    M,
    beneficial,
    logged,
    register,
    registered,
    rejected,
    tally_of,
    vote,
)

pytestmark = pytest.mark.integration


async def test_r12_per_item_closures_and_r6_attendance_through_kafka(settings):
    mid = "kp"
    positions: list[Position] = [
        registered("R-1", 100),
        registered("R-2", 200),
        registered("R-3", 400),
        registered("R-4", 800),
        registered("R-5", 1600),
        beneficial("B-1", 3200, "Broker X"),
    ]
    spec = small_meeting(meeting_id=mid, event_id="kp-meeting", outstanding=10_000)
    proxies = [
        (vote(mid, "r1-proxy", "R-1", {"2": "against", "3": "against"}, executed=5), OK),
        (vote(mid, "r2-proxy", "R-2", {"3": "for"}, executed=5), OK),
        (vote(mid, "r3-proxy", "R-3", {"2": "for", "3": "for"}, executed=5), OK),
        (vote(mid, "r4-proxy", "R-4", {"2": "for", "3": "for"}, executed=5), OK),
        (vote(mid, "r5-proxy", "R-5", {"3": "for"}, executed=5), OK),
        (vote(mid, "b1-broker", "B-1", {"3": "for"}, executed=5, channel="broker"), OK),
    ]
    at_meeting = [
        # R6: attending without voting: R-1's proxy keeps counting; B-1 (legal proxy) likewise.
        (vote(mid, "r1-attends", "R-1", {}, executed=M + 0.1, channel="in_person"), OK),
        (vote(mid, "b1-attends", "B-1", {}, executed=M + 0.1, channel="in_person", legal_proxy_id="LP-1"), OK),
        # R6: a ballot marking an item revokes R-2's proxy (on every item it is received before).
        (vote(mid, "r2-ballot", "R-2", {"2": "against"}, executed=M + 0.1, channel="in_person"), OK),
        # Received after item 3 closes (M+0.5) but logged before that closure reaches the log:
        # R-4's ballot marks only item 3, so it counts nowhere (as if the closure had come first);
        # R-5's also marks item 2, still open: it counts there, and R-5's proxy on item 3.
        (vote(mid, "r4-ballot", "R-4", {"3": "against"}, executed=M + 0.6, channel="in_person"), OK),
        (vote(mid, "r5-ballot", "R-5", {"2": "against", "3": "against"}, executed=M + 0.6, channel="in_person"), OK),
    ]
    close_3 = PollsClosed(event_id="kp-close-3", meeting_id=mid, closed_at=at(M + 0.5), items=["3"])
    after = [
        (vote(mid, "r3-ballot", "R-3", {"2": "against"}, executed=M + 1, channel="in_person"), OK),
        (
            vote(mid, "r3-ballot-3", "R-3", {"3": "against"}, executed=M + 1.1, channel="in_person"),
            rejected("poll_closed"),
        ),
    ]
    close_all = PollsClosed(event_id="kp-close-all", meeting_id=mid, closed_at=at(M + 2))
    too_late = [(vote(mid, "r1-attends-late", "R-1", {}, executed=M + 3, channel="in_person"), rejected("poll_closed"))]

    n = 0
    async with running_ledger(settings), producer(settings) as client:
        for step in [
            [spec, register(mid, positions, {"Broker X": 3200})],
            [e for e, _ in proxies],
            [e for e, _ in at_meeting],
            [close_3],
            [e for e, _ in after],
            [close_all],
            [e for e, _ in too_late],
        ]:
            await publish(client, settings, step)
            n += len(step)
            await wait_for(settings.pg_dsn, COUNT, n)
    await run_projector(settings, n)

    log = await logged(settings.pg_dsn)
    expected = {e.event_id: d for e, d in proxies + at_meeting + after + too_late}
    expected.update({close_3.event_id: OK, close_all.event_id: OK})
    assert {k: log[k] for k in expected} == expected

    quorum, items, _ = await tally_of(settings.pg_dsn, mid)
    # R14: everyone present, B-1 and R-1 through their attendance too: 100+200+400+800+1600+3200 = 6300.
    assert quorum == {"required": 3334, "present": 6300, "met": True}
    # Proxies counting on 1.1, 1.2, 5 (R9: as recommended): R-1 100, R-4 800 = 900. Ballots leave them
    # unmarked: R-2 200, R-3 400, R-5 1600 = 2200 not voted. B-1 attends, its broker left them unmarked: R16.
    assert items["1.1"][0] == items["1.2"][0] == {"for": 900, "broker_non_votes": 3200, "not_voted": 2200}
    assert items["5"][0] == {"3y": 900, "broker_non_votes": 3200, "not_voted": 2200}
    # Item 2 (open until M+2): against R-1 100 + R-2 200 + R-3 400 (its ballot, after item 3 closed) +
    # R-5 1600 = 2300; for R-4 800 (its proxy: its ballot counted nowhere); B-1 3200 routine, unvoted.
    assert items["2"][0] == {"against": 2300, "for": 800, "not_voted": 3200}
    # Item 3 (closed at M+0.5): against R-1 100; for R-3 400, R-4 800, R-5 1600 (their proxies, received
    # before it closed) + B-1 3200 = 6000; R-2's ballot (received before) leaves it unmarked: 200.
    assert items["3"][0] == {"against": 100, "for": 6000, "not_voted": 200}

    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        history = await read_history(conn, mid, "R-3")
        r1 = await read_history(conn, mid, "R-1")
    finally:
        await conn.close()
    rows = {row["event_id"]: row for row in history["rows"]}
    assert rows[f"{mid}-r3-ballot"]["status"] == "counts"
    assert [(p["item"], p["status"], p["rule"], p["by"]["event_id"]) for p in rows[f"{mid}-r3-ballot"]["per_item"]] == [
        ("3", "superseded", "R12", "kp-close-3")
    ]
    assert (rows[f"{mid}-r3-proxy"]["status"], rows[f"{mid}-r3-proxy"]["rule"]) == ("superseded", "R6")
    assert [(p["item"], p["status"]) for p in rows[f"{mid}-r3-proxy"]["per_item"]] == [("3", "counts")]
    statuses = {row["event_id"]: row["status"] for row in r1["rows"]}
    assert statuses == {
        f"{mid}-r1-proxy": "counts",
        f"{mid}-r1-attends": "attends",
        f"{mid}-r1-attends-late": "rejected",
    }

    # The projector's per-item states (with the late closure's refolds) are what a replay of the log gives:
    # audit verify refolds from scratch and compares, and a rebuild reproduces the same tables.
    code, out, err = await cli(settings, "audit", "verify", "--meeting", mid, "--no-heads")
    assert code == 0 and "VERIFIED" in out, out + err
    tables = await snapshot(settings.pg_dsn)
    code, _, err = await cli(settings, "projections", "rebuild", "--meeting", mid)
    assert code == 0, err
    assert await snapshot(settings.pg_dsn) == tables

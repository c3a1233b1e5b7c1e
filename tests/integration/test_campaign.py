"""The timeline, campaign and call list through the real pipeline: counts equal the log's, CLI JSON equals API JSON."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import msgspec
import pytest

from events import Entitlement, Position
from services.adapters.kafka.topics import producer, publish
from tests.factories import POSITIONS, cast, register_event, small_meeting
from tests.integration.helpers import api_token, run_cli, run_projector, running_api, running_ledger, wait_for

pytestmark = pytest.mark.integration

# The small meeting with two more positions: R-3 never votes, B-3's owner never instructs (its broker votes it).
REGISTER = msgspec.structs.replace(
    register_event(
        [
            *POSITIONS,
            Position(control_number="R-3", kind="registered", shares=1500, holders=["Gus", "Hal"]),
            Position(control_number="B-3", kind="beneficial", shares=500, holders=[], nominee="Broker X"),
        ]
    ),
    entitlements=[Entitlement(nominee="Broker X", shares=6500)],
)
DAY = 24
VOTES = [  # received over twelve days of a thirty-day campaign: the forecast has bins to fit
    cast("R-1", {"1.1": "for", "2": "for", "3": "for", "5": "3y"}, executed=1 * DAY),
    cast("B-1", {"1.1": "for", "2": "for", "3": "against"}, executed=3 * DAY, channel="broker"),
    cast("R-2", {"3": "against"}, executed=6 * DAY, channel="phone", shares=333),
    cast("B-2", {"1.1": "against", "3": "for"}, executed=9 * DAY, channel="broker"),
    cast("B-3", {"2": "for"}, executed=11 * DAY, channel="broker", discretionary=True),
    cast("R-1", {"2": "against"}, executed=12 * DAY, channel="mail"),  # R11: unsigned, rejected
    cast("X-9", {"2": "for"}, executed=12 * DAY),  # R1: not_entitled
]
PUBLISHED = [small_meeting(outstanding=12_000), REGISTER, *VOTES]


async def log_facts(dsn: str) -> dict:
    """What the log itself says, by plain SQL."""
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "rows": await conn.fetchval("SELECT count(*) FROM ledger_log WHERE meeting_id = 'm1'"),
            "accepted_submissions": await conn.fetchval(
                "SELECT count(*) FROM ledger_log WHERE meeting_id = 'm1' AND decision = 'accepted'"
                " AND type IN ('vote.cast', 'vote.revoked', 'proxy.substituted')"
            ),
            "rejected": dict(
                await conn.fetch(
                    "SELECT reason, count(*) FROM ledger_log WHERE meeting_id = 'm1' AND decision = 'rejected'"
                    " GROUP BY reason"
                )
            ),
            "head": await conn.fetchrow(
                "SELECT position, hash FROM ledger_log WHERE meeting_id = 'm1' ORDER BY position DESC LIMIT 1"
            ),
        }
    finally:
        await conn.close()


async def test_timeline_campaign_and_call_list_agree_with_the_log_and_the_api_answers_what_the_cli_prints(settings):
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, PUBLISHED)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", len(PUBLISHED))
    await run_projector(settings, len(PUBLISHED))
    facts = await log_facts(settings.pg_dsn)

    commands = {
        "/v1/meetings/m1/timeline": ["report", "timeline", "--meeting", "m1", "--json"],
        "/v1/meetings/m1/timeline?bucket_s=60": ["report", "timeline", "--meeting", "m1", "--bucket-s", "60", "--json"],
        "/v1/meetings/m1/campaign": ["report", "campaign", "--meeting", "m1", "--json"],
        "/v1/meetings/m1/call-list?limit=10": ["report", "call-list", "--meeting", "m1", "--limit", "10", "--json"],
    }
    printed = dict(
        zip(commands, await asyncio.gather(*(run_cli(settings, *a) for a in commands.values())), strict=True)
    )
    cli = {path: json.loads(text) for path, text in printed.items()}

    timeline = cli["/v1/meetings/m1/timeline"]
    buckets = timeline["buckets"]
    assert sum(b["accepted"] + b["other"] + sum(b["rejected"].values()) for b in buckets) == facts["rows"]
    assert timeline["rows"] == facts["rows"] == len(PUBLISHED)
    assert sum(b["accepted"] for b in buckets) == facts["accepted_submissions"] == 5
    rejected: dict[str, int] = {}
    for b in buckets:
        for reason, n in b["rejected"].items():
            rejected[reason] = rejected.get(reason, 0) + n
    assert rejected == facts["rejected"] == {"unsigned": 1, "not_entitled": 1}
    assert timeline["as_of_position"] == len(PUBLISHED)
    assert timeline["chain_head"] == {"position": facts["head"]["position"], "hash": bytes(facts["head"]["hash"]).hex()}
    campaign = cli["/v1/meetings/m1/campaign"]
    assert buckets[-1]["present"] == campaign["present"] == 3000 + 333 + 2000 + 4000 + 500
    assert [b["present"] for b in buckets] == sorted(b["present"] for b in buckets)  # nobody revoked: it only grows
    minutes = cli["/v1/meetings/m1/timeline?bucket_s=60"]
    assert minutes["bucket_s"] == 60 and minutes["buckets"][-1]["present"] == campaign["present"]
    assert sum(b["accepted"] + b["other"] + sum(b["rejected"].values()) for b in minutes["buckets"]) == facts["rows"]

    channels = {c["channel"]: c for c in campaign["by_channel"]}
    assert sum(c["present"] for c in channels.values()) == campaign["present"]
    assert (channels["internet"]["present"], channels["phone"]["present"]) == (3000, 333)
    assert (channels["broker"]["present"], channels["broker"]["discretionary"]) == (6500, 500)
    nominees = {n["nominee"]: n for n in campaign["by_nominee"]}
    assert nominees[None]["present"] == 3333 and nominees[None]["shares"] == 5500
    assert nominees["Broker X"]["present"] == 6500 and nominees["Broker X"]["entitlement"] == 6500
    assert campaign["forecast"]["status"] == "projected"
    forecast = campaign["forecast"]["turnout"]
    assert forecast["low"] <= forecast["projected"] <= forecast["high"] <= 12_000

    calls = cli["/v1/meetings/m1/call-list?limit=10"]["positions"]
    voters = {v.control_number for v in VOTES[:4]}  # the accepted own instructions
    assert not voters & {p["control_number"] for p in calls}
    assert [(p["control_number"], p["shares"], p["status"]) for p in calls] == [
        ("R-3", 1500, "absent"),
        ("B-3", 500, "broker_vote_only"),
    ]

    token, _ = await api_token(settings, "ops")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        auth = {"Authorization": f"Bearer {token}"}
        for path, body in cli.items():
            response = await client.get(path, headers=auth)
            assert response.status_code == 200, (path, response.text)
            assert response.json() == body, path
            assert response.headers["x-log-position"] == str(body["as_of_position"])
            again = await client.get(path, headers={**auth, "If-None-Match": response.headers["etag"]})
            assert again.status_code == 304, path
        assert (await client.get("/v1/meetings/nope/campaign", headers=auth)).status_code == 404

"""The hand-computed worked example through the public path: Kafka -> ledger -> log -> projector -> tally.

Both policies share one test database: the `prorate` meeting as written in
tests/data/worked_example.json and its `reject` copy (own meeting id and event ids). Each event is
published only once the previous one is in the log, so the log order is the JSON's order (the
`reject` policy depends on it, R17) whatever the partitions.
"""

from __future__ import annotations

import dataclasses

import asyncpg
import pytest

from services.adapters.kafka.topics import producer, publish
from services.read.tallies import read_counted, read_tally
from tests import worked_example as we
from tests.integration.helpers import run_projector, running_ledger, wait_for

pytestmark = pytest.mark.integration

COUNT = "SELECT count(*) FROM ledger_log"


async def test_the_worked_example_through_kafka_tallies_as_computed_by_hand_under_both_policies(settings):
    runs = {"prorate": we.events("prorate"), "reject": we.events("reject", renamed=True)}
    # R19: an instruction the fold refuses under `reject` gets a vote.refused row right after its own.
    refused = {policy: set(we.expected(policy, renamed=True)["refused_by_fold"]) for policy in we.POLICIES}
    n = 0
    async with running_ledger(settings), producer(settings) as client:
        for index in range(len(runs["prorate"])):
            for policy in we.POLICIES:
                await publish(client, settings, [runs[policy][index]])
                n += 1 + (runs[policy][index].event_id in refused[policy])
                await wait_for(settings.pg_dsn, COUNT, n, timeout=30)
    await run_projector(settings, n)

    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        for policy in we.POLICIES:
            meeting_id = we.meeting_id(policy, renamed=True)
            rows = await conn.fetch(
                "SELECT event_id, decision, reason FROM ledger_log WHERE meeting_id = $1 ORDER BY position", meeting_id
            )
            # R19: every event is in the log, in the JSON's order, with the decision written there, and
            # each instruction the fold refused is followed by the ledger's refusal row.
            expected_rows = []
            for e in we.entries(policy, renamed=True):
                expected_rows.append((e["event"]["event_id"], e["expect"]["decision"], e["expect"].get("reason")))
                if e["event"]["event_id"] in refused[policy]:
                    expected_rows.append((f"ledger:refused:{e['event']['event_id']}", "rejected", "over_entitlement"))
            assert [(r["event_id"], r["decision"], r["reason"]) for r in rows] == expected_rows

            report = await read_tally(conn, meeting_id)
            assert report.pop("as_of_position") == n
            assert report.pop("register")["complete"], policy  # issue 12: the tally says whether it is complete
            assert report == we.expected_tally(policy, renamed=True), policy

            counted = await read_counted(conn, meeting_id)
            assert [dataclasses.asdict(o) for o in counted["overvotes"]] == we.expected(policy, renamed=True)[
                "overvotes"
            ], policy
    finally:
        await conn.close()

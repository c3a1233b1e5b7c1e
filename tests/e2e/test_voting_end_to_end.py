"""End to end through the public interfaces: CLI, Kafka topics, the log, the tally JSON."""

import asyncio
import json
import time

import pytest

from events import decode
from services.adapters.kafka.topics import producer, publish_raw
from services.devtools.demo.channels import Signer
from services.devtools.demo.loader import prepare
from services.devtools.demo.register import entitlements_for
from services.devtools.demo.traffic import generate
from tests import reference_count
from tests.e2e.conftest import MEETING_FILE, log_rows

pytestmark = pytest.mark.e2e
SUBMISSION_TYPES = "'vote.cast', 'vote.revoked', 'proxy.substituted'"


async def test_thousands_of_submissions_through_kafka_tally_as_an_independent_count(vote_ledger, settings):
    vote_ledger.run("db", "migrate")
    vote_ledger.start("services", "run", name="services")
    vote_ledger.run("meeting", "load", str(MEETING_FILE), "--simulated-channels")
    vote_ledger.run("simulate", "--meeting-file", str(MEETING_FILE), "--rate", "4000", "--duration", "1.5")
    vote_ledger.run("status", "--wait", "120")
    tally = json.loads(vote_ledger.run("tally", "--meeting", "cbak-2023-agm", "--json").stdout)

    spec, register, sim, positions = prepare(MEETING_FILE)
    entitlements = {e.nominee: e.shares for e in entitlements_for(positions, register)}
    published = list(generate(spec, positions, sim, count=6000, seed=sim.seed))
    # simulate signs each one as its channel, under an id in the channel's namespace (S6).
    signed = list(Signer(spec, register, sim).signed(published))
    rows = await log_rows(
        settings.pg_dsn,
        "SELECT event_id, decision, payload FROM ledger_log"
        " WHERE type IN ('vote.cast', 'vote.revoked', 'proxy.substituted')",
    )
    # Nothing lost, nothing doubled: every published submission is in the log exactly once (R18, R19).
    assert sorted(r["event_id"] for r in rows) == sorted(s.event_id for s in signed)
    accepted = [decode(r["payload"]) for r in rows if r["decision"] == "accepted"]
    assert len(accepted) > 0.95 * len(published)

    expected = reference_count.count(spec, {p.control_number: p for p in positions}, accepted, entitlements)
    assert tally["quorum"]["present"] == expected["present"]
    assert tally["quorum"]["met"] is True
    for item in spec.items:
        got = {k: v for k, v in tally["items"][item.id].items() if k not in ("outcome", "margin", "not_voted") and v}
        assert got == expected["items"][item.id], item.id


async def test_a_ledger_killed_mid_stream_restarts_and_every_submission_is_logged_exactly_once(vote_ledger, settings):
    vote_ledger.run("db", "migrate")
    services = vote_ledger.start("services", "run", name="services-1")
    vote_ledger.run("meeting", "load", str(MEETING_FILE), "--simulated-channels")
    spec, register, sim, positions = prepare(MEETING_FILE)
    # Signed by their channels, as the meeting requires (the keys came with meeting load).
    submissions = list(Signer(spec, register, sim).signed(generate(spec, positions, sim, count=30_000, seed=11)))
    votes = f"SELECT {{}} FROM ledger_log WHERE type IN ({SUBMISSION_TYPES})"

    async with producer(settings) as client:
        payloads = [(s.key, s.payload) for s in submissions]
        publishing = asyncio.create_task(publish_raw(client, settings.submissions_topic, payloads))
        deadline = time.monotonic() + 120
        while True:  # kill -9 once the ledger is visibly mid-stream
            (row,) = await log_rows(settings.pg_dsn, votes.format("count(*) AS n"))
            if row["n"] > 3_000 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        services.kill()  # SIGKILL: no shutdown hook runs, the open batch transaction is lost
        services.wait()
        await publishing
    (row,) = await log_rows(settings.pg_dsn, votes.format("count(*) AS n"))
    assert 3_000 < row["n"] < 30_000, "the ledger was not killed mid-stream"

    vote_ledger.start("services", "run", name="services-2")
    vote_ledger.run("status", "--wait", "150", timeout=200)
    rows = await log_rows(settings.pg_dsn, votes.format("event_id"))
    logged = [r["event_id"] for r in rows]
    assert len(logged) == len(set(logged)) == len(submissions)
    assert set(logged) == {e.event_id for e in submissions}

"""R13 on real Kafka and PostgreSQL: substitutions judged by the ledger, reported by `vote-ledger proxies`."""

import json

import asyncpg
import pytest

from events import ProxySubstituted
from services.adapters.kafka.topics import producer, publish
from services.read.proxies import read_proxies
from tests.factories import at, cast, register_event, small_meeting
from tests.integration.helpers import run_cli, run_projector, running_ledger, wait_for

pytestmark = pytest.mark.integration

ANN, BOB, CARL, DANA = "Ann Proxy", "Bob Proxy", "Carl Sub", "Dana Sub"


def sub(event_id, holder, substitute, executed, control_numbers=None) -> ProxySubstituted:
    """A proxy.substituted of meeting m1, received a minute after it was executed."""
    return ProxySubstituted(
        event_id=event_id,
        meeting_id="m1",
        proxy_holder=holder,
        substitute=substitute,
        executed_at=at(executed),
        received_at=at(executed + 1 / 60),
        control_numbers=control_numbers,
    )


SUBSTITUTIONS = [
    sub("sub-1", ANN, CARL, 2),  # every proxy Ann holds
    sub("sub-2", CARL, DANA, 3, ["R-1"]),  # a substitute substitutes again, for one number
    sub("sub-3", DANA, "Eli Sub", 4, ["R-2"]),  # Dana was given R-1 only: not_proxy_holder
    sub("sub-4", "Zed Stranger", CARL, 4),  # holds no proxy: not_proxy_holder
]
VOTES = [
    cast("R-1", {"2": "for"}),
    cast("R-2", {"3": "against"}, channel="phone"),
    cast("B-1", {"2": "for"}, channel="broker", shares=1500),  # R2: partial
    cast("B-2", {"2": "for"}, executed=24 * 30 + 1, channel="in_person", legal_proxy_id="LP-1"),  # R6: no proxy
]


async def test_r13_the_ledger_answers_who_holds_and_votes_each_proxy_and_logs_refused_substitutions(settings):
    total = 2 + len(VOTES) + len(SUBSTITUTIONS)
    async with running_ledger(settings), producer(settings) as client:
        await publish(client, settings, [small_meeting(), register_event()] + VOTES + SUBSTITUTIONS)
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", total)
    await run_projector(settings, total)

    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        decisions = {
            r["event_id"]: (r["decision"], r["reason"])
            for r in await conn.fetch(
                "SELECT event_id, decision, reason FROM ledger_log WHERE type = 'proxy.substituted'"
            )
        }
        report = await read_proxies(conn, "m1")
        earlier = await read_proxies(conn, "m1", as_of=at(2.5))
    finally:
        await conn.close()
    assert decisions == {
        "sub-1": ("accepted", None),
        "sub-2": ("accepted", None),
        "sub-3": ("rejected", "not_proxy_holder"),
        "sub-4": ("rejected", "not_proxy_holder"),
    }

    # R-1 3,000 (Dana + Bob), R-2 1,000 and B-1 1,500 of 2,000 (Carl + Bob); B-2 voted in person.
    rows = {r["holder"]: (r["control_numbers"], r["shares"], r["appointed_by"]) for r in report["holders"]}
    assert rows == {BOB: (3, 5500, []), CARL: (2, 2500, [ANN]), DANA: (1, 3000, [CARL])}
    assert report["proxies_voted"] == {"control_numbers": 3, "shares": 5500}
    assert report["chains"] == {ANN: ["sub-1", "sub-2"], BOB: []}
    assert report["log_position"] == report["votes_as_of_position"] == total
    # As of 2.5 h only Ann's substitution had been executed: Carl held all of Ann's proxies.
    assert {r["holder"]: r["shares"] for r in earlier["holders"]} == {BOB: 5500, CARL: 5500}

    printed = json.loads(await run_cli(settings, "proxies", "--meeting", "m1", "--json"))
    assert printed == report
    table = await run_cli(settings, "proxies", "--meeting", "m1", "--as-of", at(2.5).isoformat())
    assert "Carl Sub" in table and "Dana Sub" not in table and "Ann Proxy -> Carl Sub: all proxies held" in table

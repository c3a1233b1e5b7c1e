"""R13 on real Kafka and PostgreSQL: substitutions judged by the ledger, reported by `vote-ledger proxies`.

Whether a substitution took effect is decided over the set of accepted ones in date order (R5), so
the ledger accepts every structurally valid one and the report says why one had no effect.
"""

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


def sub(event_id, holder, substitute, executed, control_numbers=None, meeting_id="m1") -> ProxySubstituted:
    """A proxy.substituted, received a minute after it was executed."""
    return ProxySubstituted(
        event_id=event_id,
        meeting_id=meeting_id,
        proxy_holder=holder,
        substitute=substitute,
        executed_at=at(executed),
        received_at=at(executed + 1 / 60),
        control_numbers=control_numbers,
    )


SUBSTITUTIONS = [
    sub("sub-1", ANN, CARL, 2),  # every proxy Ann holds
    sub("sub-2", CARL, DANA, 3, ["R-1"]),  # a substitute substitutes again, for one number
    sub("sub-3", DANA, "Eli Sub", 4, ["R-2"]),  # Dana was given R-1 only: accepted, no effect
    sub("sub-4", "Zed Stranger", CARL, 4),  # holds no proxy: accepted, no effect
]
VOTES = [
    cast("R-1", {"2": "for"}),
    cast("R-2", {"3": "against"}, channel="phone"),
    cast("B-1", {"2": "for"}, channel="broker", shares=1500),  # R2: partial
    cast("B-2", {"2": "for"}, executed=24 * 30 + 1, channel="in_person", legal_proxy_id="LP-1"),  # R6: no proxy
]


async def test_r13_the_ledger_answers_who_holds_and_votes_each_proxy_and_why_a_substitution_had_no_effect(settings):
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
    assert decisions == {f"sub-{n}": ("accepted", None) for n in (1, 2, 3, 4)}  # none refused by arrival

    # R-1 3,000 (Dana + Bob), R-2 1,000 and B-1 1,500 of 2,000 (Carl + Bob); B-2 voted in person.
    rows = {r["holder"]: (r["control_numbers"], r["shares"], r["appointed_by"]) for r in report["holders"]}
    assert rows == {BOB: (3, 5500, []), CARL: (2, 2500, [ANN]), DANA: (1, 3000, [CARL])}
    assert report["proxies_voted"] == {"control_numbers": 3, "shares": 5500}
    assert report["chains"] == {ANN: ["sub-1", "sub-2", "sub-3"], BOB: []}
    links = {link["event_id"]: link for link in report["substitutions"]}
    assert [links[f"sub-{n}"]["effective"] for n in (1, 2, 3, 4)] == [True, True, False, False]
    assert links["sub-3"]["why"] == f"{DANA} held none of the listed proxies at {at(4).isoformat()}"
    assert links["sub-3"]["not_held"] == ["R-2"] and links["sub-4"]["lineage"] == []
    assert links["sub-4"]["why"] == f"Zed Stranger held no proxy at {at(4).isoformat()}"
    assert report["without_effect"] == 2
    assert report["log_position"] == report["votes_as_of_position"] == total
    # As of 2.5 h only Ann's substitution had been executed: Carl held all of Ann's proxies.
    assert {r["holder"]: r["shares"] for r in earlier["holders"]} == {BOB: 5500, CARL: 5500}

    printed = json.loads(await run_cli(settings, "proxies", "--meeting", "m1", "--json"))
    assert printed == report
    table = await run_cli(settings, "proxies", "--meeting", "m1", "--as-of", at(2.5).isoformat())
    assert "Carl Sub" in table and "Dana Sub" not in table and "Ann Proxy -> Carl Sub: all proxies held" in table
    table = await run_cli(settings, "proxies", "--meeting", "m1")
    assert (
        f"Zed Stranger -> Carl Sub: all proxies held  [no effect: Zed Stranger held no proxy at {at(4).isoformat()}]"
        in table
    )
    assert "2 accepted substitution(s) had no effect" in table


def chain(meeting_id: str) -> list[ProxySubstituted]:
    """A chain in date order: Ann -> Carl, Carl -> Dana for R-1, Dana -> Eli, and Bob -> Fay at Dana's time."""
    return [
        sub(f"{meeting_id}-a", ANN, CARL, 2, meeting_id=meeting_id),
        sub(f"{meeting_id}-b", CARL, DANA, 3, ["R-1"], meeting_id=meeting_id),
        sub(f"{meeting_id}-c", DANA, "Eli Sub", 4, meeting_id=meeting_id),
        sub(f"{meeting_id}-d", BOB, "Fay Sub", 4, meeting_id=meeting_id),  # a tie with c: event id orders them
    ]


async def test_r13_a_chain_published_in_reverse_date_order_ends_with_the_same_holders_as_in_date_order(settings):
    meetings = [small_meeting(meeting_id=m, event_id=f"meeting-{m}") for m in ("dated", "reversed")]
    registers = [register_event(meeting_id=m) for m in ("dated", "reversed")]
    # One at a time, each logged before the next is published: the ledger sees them in exactly this order.
    arrivals = chain("dated") + list(reversed(chain("reversed")))
    n = 0
    async with running_ledger(settings), producer(settings) as client:
        for step in [meetings + registers, *[[event] for event in arrivals]]:
            n += await publish(client, settings, step)
            await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", n)

    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        decisions = await conn.fetch("SELECT decision, reason FROM ledger_log WHERE type = 'proxy.substituted'")
        reports = {
            (m, when): await read_proxies(conn, m, as_of=None if when is None else at(when))
            for m in ("dated", "reversed")
            for when in (None, 1, 2, 3, 3.5, 4, 5)
        }
    finally:
        await conn.close()
    assert [(r["decision"], r["reason"]) for r in decisions] == [("accepted", None)] * 8

    def same(report: dict, meeting_id: str) -> dict:
        """The report with the meeting's own names taken out of its event ids."""
        text = json.dumps({k: v for k, v in report.items() if k not in ("meeting_id", "log_position")})
        return json.loads(text.replace(f"{meeting_id}-", "x-"))

    for when in (None, 1, 2, 3, 3.5, 4, 5):
        assert same(reports["dated", when], "dated") == same(reports["reversed", when], "reversed")
    final = reports["reversed", None]
    assert {r["holder"]: r["appointed_by"] for r in final["holders"]} == {
        CARL: [ANN],
        "Eli Sub": [DANA],
        "Fay Sub": [BOB],
    }
    assert [link["effective"] for link in final["substitutions"]] == [True] * 4 and final["without_effect"] == 0
    assert final["chains"] == {ANN: ["reversed-a", "reversed-b", "reversed-c"], BOB: ["reversed-d"]}
    # Between Dana's appointment and her own substitution she held R-1 with Bob.
    assert {r["holder"] for r in reports["reversed", 3.5]["holders"]} == {BOB, CARL, DANA}

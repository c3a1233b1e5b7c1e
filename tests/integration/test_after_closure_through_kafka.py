"""Through Kafka, the ledger and the projector: after the polls closed on every item, a substitution received later
and an amendment effective later change nothing, whether the closure was logged before them or after (R5).

Two meetings get the same events, one with the closure logged first, the other with it logged last; their
`proxies`, `tally` and `audit history` answers are the same.
"""

from __future__ import annotations

import json

import asyncpg
import pytest

from events import ItemCorrected, MeetingCorrected, PollsClosed, ProxySubstituted
from services.adapters.kafka.topics import producer, publish
from tests.factories import at, cast, register_event, revoke, small_meeting
from tests.integration.helpers import cli, running_ledger, running_projector, wait_for

pytestmark = pytest.mark.integration

ANN, BOB = "Ann Proxy", "Bob Proxy"
ROWS = "SELECT count(*) FROM ledger_log WHERE meeting_id = $1"
CHECKPOINT = "SELECT position FROM projection_checkpoints"
HEAD = "SELECT coalesce(max(position), 0) FROM ledger_log"


def events(meeting_id: str) -> dict[str, object]:
    """The same events for each meeting: a chain of two substitutions, the second received after the closure."""
    return {
        "vote": cast("R-1", {"2": "against"}, executed=6, received=2, meeting_id=meeting_id, event_id="v1"),
        "carl": ProxySubstituted(
            event_id="s1",
            meeting_id=meeting_id,
            proxy_holder=ANN,
            substitute="Carl",
            executed_at=at(1),
            received_at=at(1),
        ),
        "dana": ProxySubstituted(
            event_id="s2",
            meeting_id=meeting_id,
            proxy_holder="Carl",
            substitute="Dana",
            executed_at=at(4),
            received_at=at(4),
        ),
        # R9 as amended: effective after the closure, for the post-dated card's unmarked item 3.
        "fix": MeetingCorrected(
            event_id="fix",
            meeting_id=meeting_id,
            effective_at=at(5),
            items=[ItemCorrected(id="3", recommendation="against")],
        ),
        "close": PollsClosed(event_id="close", meeting_id=meeting_id, closed_at=at(3)),
    }


async def send(settings, meeting_id: str, names: list[str]) -> None:
    """Publish these events of the meeting one at a time, each logged before the next (they use two topics)."""
    mine = events(meeting_id)
    for name in names:
        event = mine[name]
        logged = await _rows(settings, meeting_id)
        admin = isinstance(event, (PollsClosed, MeetingCorrected))
        async with producer(settings, "admin" if admin else "operator") as p:
            await publish(p, settings, [event])
        await wait_for(settings.pg_dsn, ROWS, logged + 1, meeting_id)


async def _rows(settings, meeting_id: str) -> int:
    """The meeting's log rows so far."""
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        return await conn.fetchval(ROWS, meeting_id)
    finally:
        await conn.close()


def strip(value):
    """JSON without what names the meeting or a log position (they differ between the two meetings)."""
    if isinstance(value, dict):
        return {
            k: strip(v)
            for k, v in value.items()
            if k not in ("meeting_id", "position", "log_position", "as_of_position", "votes_as_of_position")
        }
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


async def test_the_closure_logged_first_or_last_gives_the_same_proxies_tally_and_history(settings):
    async with running_ledger(settings), running_projector(settings):
        async with producer(settings, "admin") as admin:
            for m in ("early", "late"):
                await publish(admin, settings, [small_meeting(meeting_id=m), register_event(meeting_id=m)])
        await wait_for(settings.pg_dsn, HEAD, 4)
        await send(settings, "early", ["vote", "carl", "close", "dana", "fix"])
        await send(settings, "late", ["vote", "carl", "dana", "fix", "close"])
        head = await wait_for(settings.pg_dsn, HEAD, 14)
        await wait_for(settings.pg_dsn, CHECKPOINT, head)
        answers = {}
        for m in ("early", "late"):
            code, proxies, err = await cli(settings, "proxies", "--meeting", m, "--json")
            assert code == 0, err
            code, tally, err = await cli(settings, "tally", "--meeting", m, "--json")
            assert code == 0, err
            answers[m] = json.loads(proxies), json.loads(tally)
    (early_proxies, early_tally), (late_proxies, late_tally) = answers["early"], answers["late"]
    # Logged after the closure: refused poll_closed; logged before it: accepted, without effect.
    assert [s["event_id"] for s in early_proxies["substitutions"]] == ["s1"]
    dana = late_proxies["substitutions"][1]
    assert dana["event_id"] == "s2" and dana["effective"] is False
    assert dana["why"] == f"received after the polls closed at {at(3).isoformat()}"
    assert strip(early_proxies["holders"]) == strip(late_proxies["holders"])
    assert {h["holder"] for h in late_proxies["holders"]} == {"Carl", BOB}
    # The correction effective after the closure is in force in neither: the card votes item 3 "for" (R9).
    assert strip(early_tally) == strip(late_tally)
    assert late_tally["items"]["3"]["for"] == 3000 and "meeting" not in late_tally


async def test_audit_history_says_present_for_an_attendance_after_a_revocation_and_per_item_counting(settings):
    card = cast("R-2", {"2": "for"}, executed=1, channel="mail", signatures=["Carl", "Dana"], event_id="r2-card")
    revoked = revoke("R-2", executed=2, event_id="r2-revoke")
    attends = cast("R-2", {}, executed=3, channel="in_person", event_id="r2-attends")
    kept = cast("R-1", {"2": "against"}, executed=1, event_id="r1-card")
    late_revoke = revoke("R-1", executed=5, event_id="r1-revoke")  # after item 2 closed: the card counts there
    async with running_ledger(settings), running_projector(settings):
        async with producer(settings, "admin") as admin:
            await publish(admin, settings, [small_meeting(), register_event()])
        await wait_for(settings.pg_dsn, HEAD, 2)
        async with producer(settings) as channel:
            await publish(channel, settings, [card, revoked, attends, kept])
        await wait_for(settings.pg_dsn, HEAD, 6)
        async with producer(settings, "admin") as admin:
            await publish(admin, settings, [PollsClosed(event_id="c2", meeting_id="m1", closed_at=at(4), items=["2"])])
        await wait_for(settings.pg_dsn, HEAD, 7)
        async with producer(settings) as channel:
            await publish(channel, settings, [late_revoke])
        await wait_for(settings.pg_dsn, HEAD, 8)
        await wait_for(settings.pg_dsn, CHECKPOINT, 8)
        code, tally, err = await cli(settings, "tally", "--meeting", "m1", "--json")
        assert code == 0, err
        histories, tables = {}, {}
        for number in ("R-1", "R-2"):
            code, out, err = await cli(
                settings, "audit", "history", "--meeting", "m1", "--control-number", number, "--format", "json"
            )
            assert code == 0, err
            histories[number] = json.loads(out)
            code, tables[number], err = await cli(
                settings, "audit", "history", "--meeting", "m1", "--control-number", number
            )
            assert code == 0, err
    # Both count present in the tally (R14): R-2 by attending (R6), R-1 by its card on the closed item 2 (R12).
    assert json.loads(tally)["quorum"]["present"] == 3000 + 1000
    r2 = histories["R-2"]
    assert r2["counts"] is None and r2["present"] is True and r2["attends"]["event_id"] == "r2-attends"
    assert "Counts: attends #" in tables["R-2"] and "r2-attends: present, votes nothing" in tables["R-2"]
    r1 = histories["R-1"]
    assert r1["counts"] is None and r1["present"] is True
    assert [(e["item"], e["event_id"]) for e in r1["counts_on_items"]] == [("2", "r1-card")]
    assert "r1-card (R12 per item); nothing on the other items" in tables["R-1"]

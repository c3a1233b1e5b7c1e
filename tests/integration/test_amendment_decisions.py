"""Event ids through the ledger (issue 12 review): an amendment's decision is read in its own meeting (ids are unique
per meeting only), and a channel's message under an id of the ledger's own rows (ledger:...) is refused."""

from datetime import datetime, time

import asyncpg
import pytest

from events import MeetingAdjourned, ProxySubstituted
from services.adapters.kafka.topics import producer, publish
from services.adapters.postgres.log.admin import admin_decision
from tests.factories import T0, at, cast, register_event, small_meeting
from tests.integration.helpers import running_ledger, wait_for

pytestmark = pytest.mark.integration


def adjourned(meeting_id: str, meeting_at: datetime) -> MeetingAdjourned:
    return MeetingAdjourned(event_id="adjourned/1", meeting_id=meeting_id, meeting_at=meeting_at, effective_at=at(1))


async def test_an_amendments_decision_is_the_one_logged_in_its_meeting_not_an_earlier_one_under_the_same_id(settings):
    on_record_date = datetime.combine(T0.date(), time(15), tzinfo=T0.tzinfo)  # refused: not after the record date
    async with running_ledger(settings), producer(settings, "admin") as admin:
        await publish(admin, settings, [small_meeting(), adjourned("m1", on_record_date)])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2)
        await publish(admin, settings, [small_meeting(meeting_id="m2", event_id="meeting-2"), adjourned("m2", at(800))])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 4)
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        first = await admin_decision(conn, "m1", "adjourned/1")
        second = await admin_decision(conn, "m2", "adjourned/1")
    finally:
        await conn.close()
    assert (first["position"], first["decision"], first["reason"]) == (2, "rejected", "invalid_amendment")
    assert (second["position"], second["decision"], second["reason"]) == (4, "accepted", None)


async def test_a_vote_published_under_an_id_of_the_ledgers_own_rows_is_logged_rejected_reserved_type(settings):
    taken = cast("R-1", {"2": "for"}, executed=1, event_id="ledger:refused:internet/R-1/a")
    substitution = ProxySubstituted(
        event_id="ledger:reinstated:x",
        meeting_id="m1",
        proxy_holder="Ann Proxy",
        substitute="Dana",
        executed_at=at(1),
        received_at=at(1),
    )
    async with running_ledger(settings):
        async with producer(settings, "admin") as admin:
            await publish(admin, settings, [small_meeting(), register_event()])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 2)
        async with producer(settings) as channel:
            await publish(channel, settings, [taken, substitution])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 4)
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        rows = await conn.fetch(
            "SELECT event_id, decision, reason FROM ledger_log WHERE position > 2 ORDER BY event_id"
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        ("ledger:refused:internet/R-1/a", "rejected", "reserved_type"),
        ("ledger:reinstated:x", "rejected", "reserved_type"),
    ]

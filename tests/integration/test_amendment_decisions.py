"""The ledger's decision on an amendment is read in its own meeting: event ids are unique per meeting only, so the
same id may be logged, and decided otherwise, in another meeting (issue 12 review)."""

from datetime import datetime, time

import asyncpg
import pytest

from events import MeetingAdjourned
from services.adapters.kafka.topics import producer, publish
from services.adapters.postgres.log.amendments import amendment_decision
from tests.factories import T0, at, small_meeting
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
        first = await amendment_decision(conn, "m1", "adjourned/1")
        second = await amendment_decision(conn, "m2", "adjourned/1")
    finally:
        await conn.close()
    assert (first["position"], first["decision"], first["reason"]) == (2, "rejected", "invalid_amendment")
    assert (second["position"], second["decision"], second["reason"]) == (4, "accepted", None)

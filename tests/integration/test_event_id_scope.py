"""Event ids are per meeting (R18, 015_event_ids_per_meeting.sql), through the real broker and ledger.

A key registered under a channel's id in another meeting, or an unsigned vote in a meeting without
signatures, takes an id in its own meeting only: the genuine vote, or meeting.scheduled, of another
meeting under that id is still accepted and counts.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from events import ChannelKeyRegistered, encode
from services.adapters.kafka.topics import key_for, producer, publish
from services.channel.client import ChannelClient, Signed, sign
from services.channel.keys import SigningKey, new_key
from tests.factories import T0, cast, register_event, small_meeting
from tests.integration.helpers import run_projector, running_ledger, wait_for

pytestmark = pytest.mark.integration

REAL_DESK = new_key("desk", "k1")  # the desk's key in meeting m1
OTHER_DESK = new_key("desk", "k1")  # another party's key registered as "desk" (same key id) in meeting m2


def registered(key: SigningKey, meeting_id: str) -> ChannelKeyRegistered:
    """A meeting's registration of a key for internet votes, valid from a day before voting opens."""
    return ChannelKeyRegistered(
        event_id=f"{meeting_id}/keys/{key.channel_id}/{key.key_id}",
        meeting_id=meeting_id,
        channel_id=key.channel_id,
        key_id=key.key_id,
        public_key=key.public_key,
        kinds=["internet"],
        effective_at=T0 - timedelta(days=1),
    )


async def _rows(dsn: str) -> list[tuple]:
    conn = await asyncpg.connect(dsn)
    try:
        return [
            tuple(r)
            for r in await conn.fetch(
                "SELECT meeting_id, event_id, type, decision, reason FROM ledger_log ORDER BY position"
            )
        ]
    finally:
        await conn.close()


async def _voters(dsn: str) -> set[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {tuple(r) for r in await conn.fetch("SELECT meeting_id, control_number FROM tally_voters")}
    finally:
        await conn.close()


async def test_a_key_for_the_same_channel_id_in_another_meeting_cannot_take_the_real_channels_event_id(settings):
    admin_events = [
        small_meeting(signatures_required=True),
        register_event(),
        registered(REAL_DESK, "m1"),
        small_meeting(signatures_required=True, event_id="meeting-2", meeting_id="m2"),
        register_event(meeting_id="m2"),
        registered(OTHER_DESK, "m2"),
    ]
    (squat,) = sign([cast("R-2", {"2": "against"}, event_id="0042", meeting_id="m2")], OTHER_DESK)
    (genuine,) = sign([cast("R-1", {"2": "for"}, event_id="0042")], REAL_DESK)
    assert squat.event_id == genuine.event_id == "desk:0042"
    async with running_ledger(settings), producer(settings, "admin") as admin:
        await publish(admin, settings, admin_events)
        async with ChannelClient(settings, "channel") as client:
            first = await client.submit([squat], timeout=60)  # signed first, in meeting m2
        async with ChannelClient(settings, "channel") as client:
            second = await client.submit([genuine], timeout=60)
    assert (first["desk:0042"].decision, first["desk:0042"].reason) == ("accepted", None)
    assert (second["desk:0042"].decision, second["desk:0042"].reason) == ("accepted", None)
    assert [r for r in await _rows(settings.pg_dsn) if r[1] == "desk:0042"] == [
        ("m2", "desk:0042", "vote.cast", "accepted", None),
        ("m1", "desk:0042", "vote.cast", "accepted", None),
    ]
    # The desk's vote counts in its meeting.
    await run_projector(settings, len(admin_events) + 2)
    assert {("m1", "R-1"), ("m2", "R-2")} <= await _voters(settings.pg_dsn)


async def test_an_unsigned_vote_under_another_meetings_scheduled_id_does_not_keep_it_from_being_scheduled(settings):
    later_meeting = small_meeting(event_id="m2/scheduled", meeting_id="m2")
    # m1 requires no signatures: an unsigned vote there takes the id m2's meeting.scheduled will have.
    squat = cast("R-1", {"2": "for"}, event_id=later_meeting.event_id)
    vote_in_m2 = cast("R-2", {"2": "against"}, meeting_id="m2")
    async with running_ledger(settings), producer(settings, "admin") as admin:
        await publish(admin, settings, [small_meeting(), register_event()])
        async with ChannelClient(settings, "channel") as client:
            taken = await client.submit([Signed(squat.event_id, key_for(squat), encode(squat))], timeout=60)
        await publish(admin, settings, [later_meeting, register_event(meeting_id="m2")])
        await wait_for(settings.pg_dsn, "SELECT count(*) FROM ledger_log", 5)
        async with ChannelClient(settings, "channel") as client:
            voted = await client.submit([Signed(vote_in_m2.event_id, key_for(vote_in_m2), encode(vote_in_m2))])
    assert (taken["m2/scheduled"].decision, taken["m2/scheduled"].reason) == ("accepted", None)
    assert (voted[vote_in_m2.event_id].decision, voted[vote_in_m2.event_id].reason) == ("accepted", None)
    assert await _rows(settings.pg_dsn) == [
        ("m1", "meeting-1", "meeting.scheduled", "accepted", None),
        ("m1", "reg-m1", "positions.recorded", "accepted", None),
        ("m1", "m2/scheduled", "vote.cast", "accepted", None),
        ("m2", "m2/scheduled", "meeting.scheduled", "accepted", None),
        ("m2", "reg-m2", "positions.recorded", "accepted", None),
        ("m2", vote_in_m2.event_id, "vote.cast", "accepted", None),
    ]

"""Small builders of events and meetings for tests, so each test states only what it is about."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from events import (
    Cutoffs,
    Entitlement,
    Item,
    MeetingScheduled,
    Position,
    PositionsRecorded,
    Quorum,
    VoteCast,
    VoteRevoked,
)
from projections.meeting import Meeting

TZ = timezone(timedelta(hours=8))
T0 = datetime(2023, 11, 1, 9, 0, tzinfo=TZ)
_ids = itertools.count(1)


def at(hours: float) -> datetime:
    """A time `hours` after the start of voting."""
    return T0 + timedelta(hours=hours)


def small_meeting(outstanding: int = 10_000, **overrides) -> MeetingScheduled:
    """A meeting with a 2-seat plurality election, a routine and a non-routine proposal, frequency."""
    fields = dict(
        event_id="meeting-1",
        meeting_id="m1",
        company="Test Co",
        title="Annual meeting",
        record_date=T0.date(),
        meeting_at=at(24 * 30),
        timezone="Asia/Shanghai",
        outstanding=outstanding,
        quorum=Quorum(numerator=1, denominator=3),
        named_proxies=["Ann Proxy", "Bob Proxy"],
        items=[
            Item(
                id="1.1",
                title="Director A",
                options=["for", "against", "abstain"],
                standard="plurality",
                recommendation="for",
                group="1",
                seats=2,
            ),
            Item(
                id="1.2",
                title="Director B",
                options=["for", "against", "abstain"],
                standard="plurality",
                recommendation="for",
                group="1",
                seats=2,
            ),
            Item(
                id="2",
                title="Auditor",
                options=["for", "against", "abstain"],
                standard="majority_of_votes_cast",
                routine=True,
                recommendation="for",
            ),
            Item(
                id="3",
                title="Plan",
                options=["for", "against", "abstain"],
                standard="majority_of_votes_cast",
                recommendation="for",
            ),
            Item(
                id="5",
                title="Frequency",
                options=["1y", "2y", "3y", "abstain"],
                standard="frequency",
                recommendation="3y",
            ),
        ],
        cutoffs=Cutoffs(internet=at(24 * 29), phone=at(24 * 29)),
    )
    fields.update(overrides)
    return MeetingScheduled(**fields)


POSITIONS = [
    Position(control_number="R-1", kind="registered", shares=3000, holders=["Alice"]),
    Position(control_number="R-2", kind="registered", shares=1000, holders=["Carl", "Dana"]),
    Position(control_number="B-1", kind="beneficial", shares=2000, holders=["Eve"], nominee="Broker X"),
    Position(control_number="B-2", kind="beneficial", shares=4000, holders=["Fay"], nominee="Broker X"),
]


def register_event(positions=POSITIONS, meeting_id: str = "m1") -> PositionsRecorded:
    """The whole register of the small meeting as one chunk."""
    return PositionsRecorded(
        event_id=f"reg-{meeting_id}",
        meeting_id=meeting_id,
        chunk=0,
        chunks=1,
        positions=list(positions),
        entitlements=[Entitlement(nominee="Broker X", shares=6000)],
    )


def meeting(spec: MeetingScheduled | None = None, positions=POSITIONS) -> Meeting:
    """A Meeting with its register recorded."""
    m = Meeting.scheduled(spec or small_meeting())
    m.record_positions(register_event(positions))
    return m


def cast(
    control_number: str,
    choices: dict,
    executed: float = 1,
    received: float | None = None,
    channel: str = "internet",
    **fields,
) -> VoteCast:
    """A vote.cast with a fresh event_id unless one is given."""
    fields.setdefault("event_id", f"e{next(_ids)}")
    return VoteCast(
        meeting_id=fields.pop("meeting_id", "m1"),
        control_number=control_number,
        channel=channel,
        submitted_by=fields.pop("submitted_by", "test"),
        executed_at=at(executed),
        received_at=at(received if received is not None else executed),
        choices=choices,
        **fields,
    )


def revoke(control_number: str, executed: float, received: float | None = None, **fields) -> VoteRevoked:
    """A vote.revoked with a fresh event_id."""
    fields.setdefault("event_id", f"e{next(_ids)}")
    return VoteRevoked(
        meeting_id="m1",
        control_number=control_number,
        channel=fields.pop("channel", "mail"),
        submitted_by="secretary",
        executed_at=at(executed),
        received_at=at(received if received is not None else executed),
        **fields,
    )

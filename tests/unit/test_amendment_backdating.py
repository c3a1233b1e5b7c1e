"""An amendment may not take effect before it was logged (issue 12, adversarial run): the judge refuses a back-dated
one invalid_amendment, on the broker's append time of its record less the meeting's grace, else its recorded_at."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from events import (
    CutoffChanged,
    Cutoffs,
    ItemCorrected,
    MeetingAdjourned,
    MeetingCorrected,
    PollsClosed,
    encode,
    tag_of,
)
from projections.judge import Judge, Received
from projections.rejudge import Rejudge
from projections.validation import INVALID_AMENDMENT
from tests.factories import at, cast, register_event, small_meeting

CLOCKED = small_meeting(cutoffs=Cutoffs(internet=at(8), phone=at(8)), broker_grace_s=60)
UNCLOCKED = msgspec.structs.replace(CLOCKED, broker_grace_s=None)


def amendments(effective_at, recorded_at=None):
    """One amendment of each kind, effective at ``effective_at``."""
    return [
        MeetingCorrected(
            event_id="fix",
            meeting_id="m1",
            effective_at=effective_at,
            items=[ItemCorrected(id="2", recommendation="against")],
            recorded_at=recorded_at,
        ),
        CutoffChanged(
            event_id="cut",
            meeting_id="m1",
            channel="internet",
            cutoff=at(2),
            effective_at=effective_at,
            recorded_at=recorded_at,
        ),
        MeetingAdjourned(
            event_id="adj", meeting_id="m1", meeting_at=at(24 * 40), effective_at=effective_at, recorded_at=recorded_at
        ),
    ]


def judge_of(spec, *events) -> Judge:
    judge = Judge()
    assert [judge.judge(e) for e in (spec, register_event(), *events)] == [None] * (2 + len(events))
    return judge


@pytest.mark.parametrize("kind", [0, 1, 2], ids=["corrected", "cutoff_changed", "adjourned"])
def test_an_amendment_effective_before_its_record_was_appended_less_the_grace_is_refused_invalid_amendment(kind):
    appended = at(5)
    for effective_at, expected in (
        (appended - timedelta(seconds=61), INVALID_AMENDMENT),  # before the grace: back-dated
        (appended - timedelta(seconds=60), None),  # within the broker's grace (clock skew): accepted
        (appended, None),
        (at(30), None),  # from a later time on
    ):
        judge = judge_of(CLOCKED)
        assert judge.judge(amendments(effective_at)[kind], Received(b"", appended)) == expected, effective_at


def test_after_an_item_closed_a_back_dated_correction_and_cut_off_are_refused_and_change_nothing_a_current_one_stands():
    # The adversarial scenario: item 2's polls closed at 6 h, then a correction and a cut-off back-dated a month.
    vote = cast("R-1", {"1.1": "for"}, executed=1)  # leaves item 2 to the recommendation in force at 1 h (R9)
    judge = judge_of(CLOCKED, vote, PollsClosed(event_id="close-2", meeting_id="m1", closed_at=at(6), items=["2"]))
    month_earlier = at(7) - timedelta(days=30)
    fix, cut, _ = amendments(month_earlier)
    assert judge.judge(fix, Received(b"", at(7))) == INVALID_AMENDMENT
    assert judge.judge(cut, Received(b"", at(7))) == INVALID_AMENDMENT
    meeting = judge.meetings["m1"]
    assert meeting.recommendation("2", at(1)) == "for" and meeting.cutoff_in_force("internet", at(1)) == at(8)
    current = msgspec.structs.replace(cut, event_id="cut-now", effective_at=at(7))
    assert judge.judge(current, Received(b"", at(7))) is None
    assert meeting.cutoff_in_force("internet", at(1)) == at(8) and meeting.cutoff_in_force("internet", at(7)) == at(2)


def test_with_the_broker_clock_off_or_no_broker_time_the_amendments_recorded_at_decides_and_without_it_none_does():
    month_earlier = at(7) - timedelta(days=30)
    for spec, appended in ((UNCLOCKED, at(7)), (UNCLOCKED, None), (CLOCKED, None)):
        judge = judge_of(spec)
        received = Received(b"", appended)
        grace = timedelta(seconds=spec.broker_grace_s or 0)
        back, stamped, unstamped = (
            amendments(month_earlier, recorded_at=at(7))[0],
            msgspec.structs.replace(amendments(at(7) - grace, recorded_at=at(7))[0], event_id="fix-2"),
            msgspec.structs.replace(amendments(month_earlier)[0], event_id="fix-3"),  # a simulation's: no recorded_at
        )
        assert [judge.judge(e, received) for e in (back, stamped, unstamped)] == [INVALID_AMENDMENT, None, None]


def test_with_the_broker_clock_on_the_broker_time_decides_not_the_recorded_at_the_publisher_wrote():
    judge = judge_of(CLOCKED)
    early_stamp = amendments(at(1), recorded_at=at(0))[0]  # a publisher's clock behind: the broker's decides
    assert judge.judge(early_stamp, Received(b"", at(5))) == INVALID_AMENDMENT


def test_the_audit_rejudges_a_back_dated_amendment_from_its_rows_broker_time_whatever_was_logged_before_it():
    fix = amendments(at(1))[0]
    rows = [(CLOCKED, None), (register_event(), None), (cast("R-1", {"2": "for"}, executed=2), None)]
    for before in (rows, rows[:2]):  # the decision rests on the amendment's own record, not on the rows before it
        audit = Rejudge()
        for position, (event, appended) in enumerate([*before, (fix, at(5))], 1):
            recorded = "rejected" if event is fix else "accepted"
            reason = INVALID_AMENDMENT if event is fix else None
            audit.feed(position, tag_of(event), recorded, reason, event, None, Received(encode(event), appended))
        assert audit.first is None
        forged = Rejudge()  # the same row logged accepted: the audit says it is misjudged
        for position, (event, appended) in enumerate([*before, (fix, at(5))], 1):
            forged.feed(position, tag_of(event), "accepted", None, event, None, Received(encode(event), appended))
        assert forged.first is not None and forged.first.position == len(before) + 1


def test_a_meeting_with_no_broker_grace_still_allows_an_amendment_its_publication_time_but_not_a_back_dated_one():
    # `meeting amend` stamps effective_at = now before publishing: the broker appends it a moment later.
    judge = judge_of(msgspec.structs.replace(CLOCKED, broker_grace_s=0))
    fix = amendments(at(5))[0]
    assert judge.judge(fix, Received(b"", at(5) + timedelta(seconds=1))) is None
    late = msgspec.structs.replace(fix, event_id="fix-late")
    assert judge.judge(late, Received(b"", at(5) + timedelta(seconds=61))) == INVALID_AMENDMENT


def test_from_recorded_at_a_tool_may_stamp_a_few_seconds_after_it_fixed_effective_at_but_not_a_minute_more():
    judge = judge_of(UNCLOCKED)
    seconds_later = amendments(at(5), recorded_at=at(5) + timedelta(seconds=4))[0]  # as the wire contract's examples
    minutes_later = msgspec.structs.replace(seconds_later, event_id="fix-2", recorded_at=at(5) + timedelta(seconds=61))
    assert [judge.judge(e, Received(b"", at(9))) for e in (seconds_later, minutes_later)] == [None, INVALID_AMENDMENT]

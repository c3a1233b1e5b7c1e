"""What the judge refuses in an amendment or a submission id (issue 12 review): corrections naming an item twice or
nothing, adjournments not strictly after the record date, ids in the ledger's own namespace."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from events import ItemCorrected, MeetingAdjourned, MeetingCorrected, ProxySubstituted
from projections.judge import Judge
from projections.validation import INVALID_AMENDMENT, RESERVED_TYPE
from tests.factories import T0, at, cast, register_event, revoke, small_meeting

SPEC = small_meeting()


def judged(*events) -> list[str | None]:
    """The judge's reasons for ``events`` after the meeting and its register were accepted."""
    judge = Judge()
    reasons = [judge.judge(e) for e in (SPEC, register_event(), *events)]
    assert reasons[:2] == [None, None]
    return reasons[2:]


@pytest.mark.parametrize("order", [["against", "for"], ["for", "against"]])
def test_a_correction_naming_the_same_item_twice_is_refused_whatever_order_it_lists_them(order):
    twice = MeetingCorrected(
        event_id="fix",
        meeting_id="m1",
        effective_at=at(1),
        items=[ItemCorrected(id="2", recommendation=r) for r in order],
    )
    judge = Judge()
    for event in (SPEC, register_event()):
        judge.judge(event)
    assert judge.judge(twice) == INVALID_AMENDMENT
    assert judge.meetings["m1"].recommendation("2", at(2)) == SPEC.items[1].recommendation  # nothing applied


def test_a_correction_that_corrects_nothing_is_refused_and_one_correcting_only_the_title_is_not():
    empty = MeetingCorrected(event_id="fix-0", meeting_id="m1", effective_at=at(1), reason="no change")
    titled = MeetingCorrected(event_id="fix-1", meeting_id="m1", effective_at=at(1), title="Annual general meeting")
    assert judged(empty, titled) == [INVALID_AMENDMENT, None]


def test_an_adjournment_is_accepted_only_to_a_date_strictly_after_the_record_date_as_a_meeting_file_is_loaded():
    on_record_date = datetime.combine(SPEC.record_date, time(15), tzinfo=T0.tzinfo)
    day_after = datetime.combine(SPEC.record_date, time(9), tzinfo=T0.tzinfo) + timedelta(days=1)
    same = MeetingAdjourned(event_id="adj-1", meeting_id="m1", meeting_at=on_record_date, effective_at=at(1))
    after = MeetingAdjourned(event_id="adj-2", meeting_id="m1", meeting_at=day_after, effective_at=at(1))
    assert judged(same, after) == [INVALID_AMENDMENT, None]


def test_a_submission_with_an_id_in_the_ledgers_own_namespace_is_refused_reserved_type():
    vote = cast("R-1", {"2": "for"}, event_id="ledger:refused:internet/R-1/a")
    revocation = revoke("R-1", executed=2, event_id="ledger:x")
    substitution = ProxySubstituted(
        event_id="ledger:sub",
        meeting_id="m1",
        proxy_holder="Ann Proxy",
        substitute="Dana",
        executed_at=at(1),
        received_at=at(1),
    )
    fine = cast("R-1", {"2": "for"}, event_id="ledgers/R-1/a")  # only the "ledger:" prefix is reserved
    assert judged(vote, revocation, substitution, fine) == [RESERVED_TYPE, RESERVED_TYPE, RESERVED_TYPE, None]

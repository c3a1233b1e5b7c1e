"""Amendments (issue 12): adjournments, changed cut-offs and corrections, appended and in force from effective_at."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from events import CutoffChanged, Cutoffs, ItemCorrected, MeetingAdjourned, MeetingCorrected, PollsClosed
from projections import timing
from projections.amendments import amend, as_amended, render_lines
from projections.judge import Judge, Received
from projections.lineage import COUNTS, SUPERSEDED, LogEntry, lineage
from projections.replay import replay
from projections.report import final_report, render_markdown
from projections.validation import INVALID_AMENDMENT, INVALID_CHOICE, POLL_CLOSED, UNKNOWN_ITEM
from tests.factories import at, cast, meeting, register_event, revoke, small_meeting

SPEC = small_meeting(cutoffs=Cutoffs(internet=at(8), phone=at(8), mail=at(9), broker=at(7)))


def cutoff(channel: str, new: float | None, effective: float, event_id: str = "cut-1") -> CutoffChanged:
    return CutoffChanged(
        event_id=event_id,
        meeting_id="m1",
        channel=channel,
        cutoff=at(new) if new is not None else None,
        effective_at=at(effective),
    )


def corrected(effective: float, event_id: str = "fix-1", **item) -> MeetingCorrected:
    return MeetingCorrected(
        event_id=event_id, meeting_id="m1", effective_at=at(effective), items=[ItemCorrected(**item)]
    )


def judged(*events, spec=SPEC):
    """A judge that accepted the meeting, its register and ``events``: (judge, reasons in order)."""
    judge = Judge()
    reasons = [judge.judge(e) for e in (spec, register_event(), *events)]
    return judge, reasons[2:]


def test_r12_a_changed_cut_off_is_in_force_only_for_submissions_received_from_its_effective_time_on():
    m = meeting(SPEC)
    m.change_cutoff(cutoff("internet", 5, effective=4))
    assert m.cutoff_in_force("internet", at(3.9)) == at(8)  # before the change: the meeting's own
    assert timing.cutoff_reason(m, "internet", at(3.9)) is None
    assert timing.cutoff_reason(m, "internet", at(4.5)) is None
    assert timing.cutoff_reason(m, "internet", at(5.5)) == timing.CUTOFF_PASSED
    assert timing.cutoff_reason(m, "phone", at(5.5)) is None  # per channel


def test_r12_a_reopening_accepts_from_its_effective_time_and_a_lift_removes_the_cut_off():
    m = meeting(SPEC)
    m.change_cutoff(cutoff("broker", 12, effective=10, event_id="cut-a"))
    assert timing.cutoff_reason(m, "broker", at(9)) == timing.CUTOFF_PASSED  # before the reopening took effect
    assert timing.cutoff_reason(m, "broker", at(11)) is None
    m.change_cutoff(cutoff("mail", None, effective=2, event_id="cut-b"))
    assert timing.cutoff_reason(m, "mail", at(100)) is None
    assert timing.cutoff_reason(m, "in_person", at(100)) is None  # ballots: until the polls close


def test_r12_changes_effective_at_the_same_time_are_ordered_by_event_id_whatever_the_log_order():
    a, b = meeting(SPEC), meeting(SPEC)
    first, second = cutoff("phone", 3, effective=2, event_id="cut-a"), cutoff("phone", 6, effective=2, event_id="cut-b")
    a.change_cutoff(first)
    a.change_cutoff(second)
    b.change_cutoff(second)
    b.change_cutoff(first)
    assert a.cutoff_in_force("phone", at(4)) == b.cutoff_in_force("phone", at(4)) == at(6)


def test_r12_on_the_broker_clock_the_cut_off_in_force_at_the_append_time_less_grace_applies():
    m = meeting(small_meeting(cutoffs=SPEC.cutoffs, broker_grace_s=60))
    m.change_cutoff(cutoff("broker", 4, effective=1))
    # Received (channel's clock) well before, appended 2 h after the amended cut-off: refused.
    assert timing.cutoff_reason(m, "broker", at(2), appended_at=at(6)) == timing.CUTOFF_PASSED
    assert timing.cutoff_reason(m, "broker", at(2), appended_at=at(4)) is None  # within the grace


def test_an_adjournment_moves_the_meeting_date_and_keeps_the_votes_already_cast():
    vote = cast("R-1", {"2": "against"}, executed=1)
    moved = MeetingAdjourned(
        event_id="adj-1", meeting_id="m1", meeting_at=at(24 * 40), effective_at=at(2), postponed=True
    )
    judge, reasons = judged(vote, moved)
    assert reasons == [None, None]
    m = judge.meetings["m1"]
    assert m.meeting_at == at(24 * 40) and m.as_amended().meeting_at == at(24 * 40)
    assert m.spec.meeting_at == SPEC.meeting_at  # the original stays, for the report
    assert replay([SPEC, register_event(), vote, moved]).tallies["m1"].buckets[("2", "against", "")] == 3000


def test_an_adjournment_before_the_record_date_is_refused_and_none_after_every_poll_closed():
    early = MeetingAdjourned(event_id="adj-1", meeting_id="m1", meeting_at=at(-24 * 3), effective_at=at(1))
    assert judged(early)[1] == [INVALID_AMENDMENT]
    closed = PollsClosed(event_id="close", meeting_id="m1", closed_at=at(20))
    later = MeetingAdjourned(event_id="adj-2", meeting_id="m1", meeting_at=at(24 * 40), effective_at=at(21))
    assert judged(closed, later, cutoff("phone", 30, effective=21), corrected(21, id="2", title="x"))[1] == [
        None,
        POLL_CLOSED,
        POLL_CLOSED,
        POLL_CLOSED,
    ]


def test_a_correction_names_known_items_and_recommends_one_of_their_options():
    assert judged(corrected(1, id="9", title="No such item"))[1] == [UNKNOWN_ITEM]
    assert judged(corrected(1, id="2", recommendation="maybe"))[1] == [INVALID_CHOICE]
    judge, reasons = judged(
        MeetingCorrected(
            event_id="fix-1",
            meeting_id="m1",
            effective_at=at(1),
            company="Test Company Ltd",
            items=[ItemCorrected(id="3", title="Equity plan", recommendation="against")],
        )
    )
    assert reasons == [None]
    amended = judge.meetings["m1"].as_amended()
    assert amended.company == "Test Company Ltd" and amended.title == SPEC.title
    assert [(i.title, i.recommendation) for i in amended.items if i.id == "3"] == [("Equity plan", "against")]


def test_r9_a_corrected_recommendation_votes_only_cards_executed_from_its_effective_time_on():
    fix = corrected(5, id="3", recommendation="against")
    before, after = cast("R-1", {}, executed=4), cast("R-2", {}, executed=5)
    for order in ([fix, before, after], [before, after, fix], [before, fix, after]):
        tally = replay([SPEC, register_event(), *order]).tallies["m1"]
        assert tally.buckets[("3", "for", "")] == 3000  # R-1 signed the card that said "for"
        assert tally.buckets[("3", "against", "")] == 1000  # R-2 signed after the correction


def test_r12_a_cut_off_moved_earlier_and_logged_after_the_votes_drops_those_it_makes_late():
    early, late = cast("R-1", {"2": "against"}, executed=1), cast("R-2", {"2": "against"}, executed=6)
    change = cutoff("internet", 5, effective=4)
    tally = replay([SPEC, register_event(), early, late, change]).tallies["m1"]
    assert tally.buckets[("2", "against", "")] == 3000  # R-2's, received after the new cut-off, counts for nothing
    assert judged(change, late)[1] == [None, timing.CUTOFF_PASSED]  # what the judge says had it come first


def test_r12_a_reopening_logged_later_than_a_change_that_dropped_a_vote_counts_it_again():
    vote = cast("R-1", {"2": "against"}, executed=6)
    events = [SPEC, register_event(), vote, cutoff("internet", 5, effective=4, event_id="cut-a")]
    assert not replay(events).tallies["m1"].buckets
    reopened = replay([*events, cutoff("internet", None, effective=4.5, event_id="cut-b")]).tallies["m1"]
    assert reopened.buckets[("2", "against", "")] == 3000


CHANNELS = ["internet", "phone", "mail", "broker"]


@st.composite
def scenarios(draw):
    """Votes and revocations over the four cut-off channels, one earlier cut-off per channel, corrections, and
    perhaps a closure of item 2."""
    hours = st.integers(min_value=0, max_value=40).map(lambda quarter: quarter / 4)
    submissions = []
    for i in range(draw(st.integers(min_value=1, max_value=12))):
        number = draw(st.sampled_from(["R-1", "R-2", "B-1", "B-2"]))
        channel = draw(st.sampled_from(CHANNELS))
        executed = draw(hours)
        received = executed + draw(st.sampled_from([0, 0.5, 2]))
        signatures = {"R-1": ["Alice"], "R-2": ["Carl", "Dana"], "B-1": ["Eve"], "B-2": ["Fay"]}[number]
        if draw(st.integers(0, 5)) == 0:
            submissions.append(revoke(number, executed, received, channel=channel, event_id=f"v{i}"))
            continue
        choices = draw(
            st.fixed_dictionaries({}, optional={"2": st.sampled_from(["for", "against"]), "3": st.just("abstain")})
        )
        submissions.append(
            cast(number, choices, executed, received, channel=channel, signatures=signatures, event_id=f"v{i}")
        )
    amendments = []
    for channel in draw(st.sets(st.sampled_from(CHANNELS))):
        original = getattr(SPEC.cutoffs, channel).hour - 9  # the factories' hours (T0 is 09:00)
        amendments.append(
            cutoff(channel, draw(hours.filter(lambda h, o=original: h <= o)), draw(hours), f"cut-{channel}")
        )
    if draw(st.booleans()):  # a per-item closure too (R12 per item): not every item, so amendments stay open
        amendments.append(PollsClosed(event_id="close", meeting_id="m1", closed_at=at(draw(hours)), items=["2"]))
    for i, item in enumerate(draw(st.lists(st.sampled_from(["2", "3"]), max_size=2))):
        amendments.append(
            corrected(draw(hours), f"fix-{i}", id=item, recommendation=draw(st.sampled_from(["for", "against"])))
        )
    return submissions, amendments


def tally_in(order) -> tuple[int, dict]:
    """Judge every event in this arrival order and fold what was accepted, in that order (the log)."""
    judge, accepted = Judge(), []
    for event in (SPEC, register_event(), *order):
        if judge.judge(event, Received(payload=b"")) is None:
            accepted.append(event)
    tally = replay(accepted).tallies["m1"]
    return tally.present, dict(tally.buckets)


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_r5_the_tally_is_the_same_whatever_order_amendments_and_votes_arrive_in(scenario, rnd: random.Random):
    submissions, amendments = scenario
    expected = tally_in([*amendments, *submissions])  # every amendment first: the meeting as amended throughout
    for _ in range(4):
        order = [*submissions, *amendments]
        rnd.shuffle(order)
        assert tally_in(order) == expected


def test_the_lineage_says_r12_for_a_vote_an_amended_cut_off_made_late_after_it_was_accepted():
    m = meeting(SPEC)
    on_time, late = cast("R-1", {"2": "for"}, executed=1), cast("R-1", {"2": "against"}, executed=6)
    m.change_cutoff(cutoff("internet", 5, effective=4))
    rows = [LogEntry(i, "accepted", None, e) for i, e in enumerate([on_time, late])]
    first, second = lineage(m, rows)
    assert (first.status, second.status, second.rule, second.by) == (COUNTS, SUPERSEDED, "R12", None)


def test_the_final_report_of_an_amended_meeting_says_as_amended_with_the_original_date_and_lists_the_amendments():
    m = meeting(SPEC)
    applied = [
        (
            7,
            MeetingAdjourned(
                event_id="adj-1", meeting_id="m1", meeting_at=at(24 * 40), effective_at=at(2), reason="storm"
            ),
        ),
        (8, cutoff("broker", 30, effective=3)),
        (9, corrected(3, id="3", title="Equity plan")),
    ]
    for _, event in applied:
        amend(m, event)
    section = as_amended(m, applied)
    report = final_report(m.as_amended(), 0, {}, [], 9, "d" * 64)
    report["as_amended"] = {k: section[k] for k in ("original_meeting_at", "amendments")}
    text = render_markdown(report)
    assert "held 2023-12-11 09:00+08:00 (as amended; originally 2023-12-01 09:00+08:00) (Asia/Shanghai)" in text
    assert (
        "- #7 `meeting.adjourned` effective 2023-11-01T11:00:00+08:00: adjourned to 2023-12-11T09:00:00+08:00 (storm)"
        in text
    )
    assert "broker cut-off: 2023-11-02T15:00:00+08:00" in text and "| 3 | Equity plan |" in text
    assert (
        render_lines(section)[0]
        == "Meeting date: 2023-12-11T09:00:00+08:00 (as amended; originally 2023-12-01T09:00:00+08:00)"
    )


def test_r9_a_correction_logged_late_recounts_an_item_still_counting_an_instruction_executed_after_it():
    # Item 2 closes at 3 h: R-1's card of 2 h keeps counting there, its card of 4 h (executed after the
    # correction of 3.5 h) counts on the other items; the correction reaches the log last.
    closed = PollsClosed(event_id="close-2", meeting_id="m1", closed_at=at(3), items=["2"])
    early, late = cast("R-1", {"2": "against"}, executed=2), cast("R-1", {"5": "1y"}, executed=4)
    fix = corrected(3.5, id="3", recommendation="against")
    for order in ([closed, fix, early, late], [early, late, closed, fix], [early, closed, late, fix]):
        tally = replay([SPEC, register_event(), *order]).tallies["m1"]
        assert tally.buckets[("2", "against", "")] == 3000 and tally.buckets[("5", "1y", "")] == 3000
        assert tally.buckets[("3", "against", "")] == 3000 and ("3", "for", "") not in tally.buckets


def test_r9_a_late_correction_recounts_a_card_that_counts_only_on_a_closed_item():
    # R-1's internet card (2 h) leaves item 2 to the recommendation, corrected from 1 h on; item 2 closes at
    # 3 h; a ballot dated earlier (0.5 h) but received later counts on the open items (R6, R12 per item).
    # The card still counts on item 2, so the correction logged last must recount it.
    card = cast("R-1", {"5": "2y"}, executed=2)
    closed = PollsClosed(event_id="close-2", meeting_id="m1", closed_at=at(3), items=["2"])
    ballot = cast("R-1", {"5": "1y"}, executed=0.5, received=4, channel="in_person")
    fix = corrected(1, id="2", recommendation="against")
    for order in ([fix, card, closed, ballot], [card, closed, ballot, fix]):
        tally = replay([SPEC, register_event(), *order]).tallies["m1"]
        assert tally.buckets[("2", "against", "")] == 3000 and ("2", "for", "") not in tally.buckets

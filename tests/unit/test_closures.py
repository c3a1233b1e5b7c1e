"""R12 per item (each item counts the latest instruction received before its own closing time) and R6 attendance."""

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from events import PollsClosed
from projections import timing
from projections.fold import BROKER_NON_VOTE, Tally, VoterState, effective
from projections.judge import Judge
from projections.lineage import ATTENDS, COUNTS, LogEntry, lineage
from projections.replay import Projection, replay
from projections.validation import POLL_CLOSED
from tests import reference_count
from tests.factories import POSITIONS, at, cast, meeting, register_event, revoke, small_meeting
from tests.strategies import submissions

ITEMS = ["1.1", "1.2", "2", "3", "5"]


def fold(events, closures=(), m=None):
    m = m or meeting()
    for closure in closures:
        m.close_polls(closure)
    tally = Tally(meeting=m)
    for event in events:
        tally.apply(event)
    return tally


def close(hours, items=None, event_id=None):
    return PollsClosed(event_id=event_id or f"close-{hours}-{items}", meeting_id="m1", closed_at=at(hours), items=items)


def totals(tally):
    return tally.item_totals()


# --- R12 per item: scenarios ------------------------------------------------------------------------


def test_r12_the_earlier_instruction_keeps_counting_on_the_closed_item_and_the_later_ballot_on_the_open_ones():
    proxy = cast("R-1", {"2": "for", "3": "against"}, executed=5)
    ballot = cast("R-1", {"3": "for"}, executed=12, channel="in_person")  # after item 2 closed at 10
    for events in ([proxy, ballot], [ballot, proxy]):
        tally = fold(events, [close(10, ["2"])])
        assert totals(tally)["2"] == {"for": 3000}  # the proxy, received before item 2 closed
        assert totals(tally)["3"] == {"for": 3000}  # the ballot (R6: it revokes the proxy on the open items)
        assert totals(tally)["1.1"] == {} and totals(tally)["5"] == {}  # the ballot leaves them unmarked
        assert tally.present == 3000


def test_r12_a_revocation_after_an_item_closed_voids_the_instruction_on_the_open_items_only():
    tally = fold([cast("R-2", {"2": "against"}, executed=5), revoke("R-2", executed=12)], [close(10, ["2"])])
    assert totals(tally)["2"] == {"against": 1000}
    assert totals(tally)["3"] == {}  # R7 on the open items: nothing counts there
    assert tally.present == 1000  # R14: present through the instruction counting on item 2


def test_r12_a_closure_logged_after_the_later_instruction_refolds_it_per_item():
    """R5: the same tally whether the per-item closure reaches the log before or after the later vote."""
    m_events = [small_meeting(), register_event()]
    early = cast("B-1", {"2": "for", "3": "for"}, executed=5, channel="broker")
    later = cast("B-1", {"3": "against"}, executed=12, channel="broker", shares=500)
    closure = close(10, ["2"])
    first = replay([*m_events, closure, early, later]).tallies["m1"]
    last = replay([*m_events, early, later, closure]).tallies["m1"]
    assert (first.present, dict(first.buckets)) == (last.present, dict(last.buckets))
    assert totals(last)["2"] == {"for": 2000}
    # R14: the greatest shares counting on some item (2,000 on item 2), R16 on that presence.
    assert totals(last)["3"] == {"against": 500, BROKER_NON_VOTE: 1500}
    assert last.present == 2000
    assert first.voters == last.voters


def test_r12_a_submission_marking_only_closed_items_counts_nowhere_whatever_the_log_order():
    judge = Judge()
    for event in (small_meeting(), register_event(), close(10, ["2"])):
        assert judge.judge(event) is None
    late = cast("R-1", {"2": "against"}, executed=12, channel="in_person")
    assert judge.judge(late) == POLL_CLOSED
    proxy = cast("R-1", {"3": "for"}, executed=5)
    logged_first = replay([small_meeting(), register_event(), proxy, late, close(10, ["2"])]).tallies["m1"]
    assert totals(logged_first)["2"] == {"for": 3000}  # R9: the proxy's unmarked item 2, as recommended
    assert totals(logged_first)["3"] == {"for": 3000}  # the late ballot did not revoke it (R6) on open items


def test_r12_closing_all_items_after_a_per_item_closure_keeps_each_items_own_instruction():
    early = cast("R-1", {"2": "for", "3": "for"}, executed=5)
    later = cast("R-1", {"2": "abstain", "3": "against"}, executed=12)
    after_all = cast("R-1", {"3": "abstain"}, executed=21)
    tally = fold([early, later, after_all], [close(10, ["2"]), close(20)])
    assert totals(tally)["2"] == {"for": 3000}
    assert totals(tally)["3"] == {"against": 3000}
    assert timing.item_horizons(tally.meeting) == {"2": at(10)}


# --- R6 attendance ----------------------------------------------------------------------------------


def test_r6_attending_without_voting_keeps_the_proxy_counting_and_is_present():
    proxy = cast("R-1", {"2": "against"}, executed=5, shares=1000)
    attends = cast("R-1", {}, executed=30, channel="in_person")
    for events in ([proxy, attends], [attends, proxy]):
        tally = fold(events)
        assert totals(tally)["2"] == {"against": 1000}
        assert totals(tally)["3"] == {"for": 1000}  # R9 on the proxy card
        assert tally.present == 3000  # R14: attending, the holder's whole position is present
        assert tally.present_count == 1


def test_r6_attendance_alone_is_present_and_votes_nothing():
    tally = fold([cast("R-2", {}, executed=30, channel="in_person")])
    assert tally.present == 1000
    assert all(not columns for columns in totals(tally).values())
    beneficial = fold([cast("B-1", {}, executed=30, channel="in_person", legal_proxy_id="LP")])
    assert beneficial.present == 2000
    assert totals(beneficial)["3"] == {BROKER_NON_VOTE: 2000}  # R16: present, not voted, non-routine
    assert totals(beneficial)["2"] == {}  # routine: no broker non-votes


def test_r6_a_ballot_marking_an_item_revokes_every_proxy_but_attendance_does_not():
    proxy = cast("R-1", {"2": "against", "3": "against"}, executed=5)
    ballot = cast("R-1", {"3": "for"}, executed=30, channel="in_person")
    tally = fold([proxy, cast("R-1", {}, executed=29, channel="in_person"), ballot])
    assert totals(tally)["2"] == {} and totals(tally)["3"] == {"for": 3000}


def test_r6_r7_a_revocation_voids_the_proxy_but_not_the_attendance():
    tally = fold(
        [
            cast("R-1", {"2": "for"}, executed=5),
            cast("R-1", {}, executed=6, channel="in_person"),
            revoke("R-1", executed=7),
        ]
    )
    assert tally.present == 3000 and all(not columns for columns in totals(tally).values())


def test_r6_the_lineage_says_attendance_is_present_and_the_proxy_still_counts():
    proxy = cast("R-1", {"2": "for"}, executed=5)
    attends = cast("R-1", {}, executed=30, channel="in_person")
    rows = [LogEntry(i, "accepted", None, e) for i, e in enumerate([proxy, attends], start=10)]
    statuses = lineage(meeting(), rows)
    assert [s.status for s in statuses] == [COUNTS, ATTENDS]


def test_r12_the_lineage_says_per_item_which_instruction_counts_and_why():
    m = meeting()
    closure = close(10, ["2"], event_id="close-2")
    m.close_polls(closure)
    proxy = cast("R-1", {"2": "for", "3": "against"}, executed=5)
    ballot = cast("R-1", {"3": "for"}, executed=12, channel="in_person")
    rows = [LogEntry(i, "accepted", None, e) for i, e in enumerate([proxy, ballot], start=10)]
    first, second = lineage(m, rows, closures=[(3, closure)])
    assert (first.status, first.rule) == ("superseded", "R6")  # on the open items the ballot counts
    assert [(s.item, s.status) for s in first.per_item] == [("2", COUNTS)]
    assert second.status == COUNTS
    assert [(s.item, s.status, s.rule, s.by.event_id) for s in second.per_item] == [
        ("2", "superseded", "R12", "close-2")
    ]


# --- Properties ----------------------------------------------------------------------------------------


@st.composite
def closures(draw):
    """Up to three polls.closed: all items or a few, at times within the submissions' span."""
    result = []
    for k in range(draw(st.integers(0, 3))):
        items = draw(st.one_of(st.none(), st.lists(st.sampled_from(ITEMS), min_size=1, max_size=3, unique=True)))
        result.append(close(draw(st.integers(0, 45)), items, event_id=f"close-{k}"))
    return result


def closes_of(closure_events):
    """Each item's closing time: its earliest closure, of all items or listing it."""
    closes = {}
    for c in closure_events:
        for item in c.items or ITEMS:
            closes[item] = min(closes.get(item, c.closed_at), c.closed_at)
    return closes


def snapshot(tally):
    return tally.present, dict(tally.buckets)


@settings(max_examples=300, deadline=None)
@given(st.lists(submissions(), max_size=25), closures())
def test_r12_per_item_the_fold_equals_the_naive_count_item_by_item(events, closure_events):
    tally = fold(events, closure_events)
    expected = reference_count.count(
        small_meeting(), {p.control_number: p for p in POSITIONS}, events, closes=closes_of(closure_events)
    )
    got = {
        k: {("broker_non_votes" if o == BROKER_NON_VOTE else o): n for o, n in v.items()}
        for k, v in totals(tally).items()
    }
    assert tally.present == expected["present"]
    assert got == expected["items"]


@settings(max_examples=200, deadline=None)
@given(st.lists(submissions(), max_size=25), closures(), st.randoms(use_true_random=False), st.integers(1, 8))
def test_r5_r12_any_log_order_of_votes_and_closures_gives_the_same_tally_and_states(events, closure_events, rnd, batch):
    """Closures anywhere in the log (late ones refold), replayed from scratch or batch by batch as the projector."""
    head = [small_meeting(), register_event()]
    closures_first = replay([*head, *closure_events, *events]).tallies["m1"]
    log = [*events, *closure_events]
    rnd.shuffle(log)
    scratch = replay([*head, *log]).tallies["m1"]
    assert snapshot(scratch) == snapshot(closures_first)
    # The projector: batches, each followed by the refolds it asks for, from the rows logged so far.
    projection = Projection()
    projection.apply_many(head)
    logged = []
    for start in range(0, len(log), batch):
        chunk = log[start : start + batch]
        logged.extend(chunk)
        projection.apply_many(chunk)
        for meeting_id, numbers in projection.take_refolds().items():
            for number in sorted(numbers):
                mine = [e for e in logged if getattr(e, "control_number", None) == number]
                projection.tallies[meeting_id].refold(number, mine)
    live = projection.tallies["m1"]
    assert snapshot(live) == snapshot(scratch)
    # audit verify and rebuild compare the stored states with a replay's: they must be the same states.
    assert {n: s for n, s in live.voters.items() if s != VoterState()} == {
        n: s for n, s in scratch.voters.items() if s != VoterState()
    }


@settings(max_examples=150, deadline=None)
@given(st.lists(submissions(), max_size=25), closures(), st.integers(0, 25))
def test_r12_a_fold_resumed_from_stored_states_with_cuts_equals_a_fold_from_scratch(events, closure_events, cut):
    first = fold(events[:cut], closure_events)
    resumed = Tally(meeting=first.meeting, present=first.present, present_count=first.present_count)
    resumed.buckets = first.buckets.copy()
    resumed.voters = {n: msgspec.json.decode(msgspec.json.encode(s), type=VoterState) for n, s in first.voters.items()}
    for event in events[cut:]:
        resumed.apply(event)
    assert snapshot(resumed) == snapshot(fold(events, closure_events))


@settings(max_examples=150, deadline=None)
@given(st.lists(submissions(), max_size=25), closures())
def test_r12_the_lineage_per_item_names_the_instruction_the_fold_counts_on_each_item(events, closure_events):
    tally = fold(events, closure_events)
    m = tally.meeting
    horizons = timing.item_horizons(m)
    for number, state in tally.voters.items():
        mine = [e for e in events if e.control_number == number]
        rows = [LogEntry(i, "accepted", None, e) for i, e in enumerate(mine)]
        statuses = lineage(m, rows)
        main = effective(state)
        assert [s.event_id for s in statuses if s.status == COUNTS] == ([main.event_id] if main else [])
        cuts = {cut.closed_at: cut.state for cut in state.cuts}
        for item, closed_at in horizons.items():
            there = effective(cuts.get(closed_at, state))
            counted = [
                s.event_id for s in statuses for line in s.per_item if line.item == item and line.status == COUNTS
            ]
            assert counted == ([there.event_id] if there else [])

"""Rules that need more than one instruction: R10 filling, R17 over-votes, universal proxy cards."""

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from events import Entitlement, Item, PositionsRecorded
from projections.fold import Tally, VoterState
from projections.meeting import Meeting
from projections.outcomes import tally_report
from projections.overvotes import counted_totals, prorate
from tests.factories import POSITIONS, cast, meeting, revoke, small_meeting
from tests.strategies import SHARES, submissions


def fold(events, m=None):
    tally = Tally(meeting=m or meeting())
    for event in events:
        tally.apply(event)
    return tally


def counted(tally):
    return counted_totals(tally.meeting.spec, tally.meeting.entitlements, tally.buckets)


def test_r10_the_nominee_votes_the_routine_items_an_owner_left_unmarked():
    owner = cast("B-1", {"3": "against"}, executed=2, channel="broker")
    discretion = cast("B-1", {"2": "for"}, executed=1, channel="broker", discretionary=True)
    totals = fold([owner, discretion]).item_totals()
    assert totals["2"] == {"for": 2000} and totals["3"] == {"against": 2000}


def test_r10_r7_a_revoked_discretionary_vote_fills_nothing():
    owner = cast("B-1", {"3": "against"}, executed=5, channel="broker")
    discretion = cast("B-1", {"2": "for"}, executed=1, channel="broker", discretionary=True)
    assert fold([owner, discretion, revoke("B-1", executed=3)]).item_totals()["2"] == {}


def overvoting_meeting(policy="prorate", entitlement=5000):
    m = Meeting.scheduled(small_meeting(overvote_policy=policy))
    m.record_positions(
        PositionsRecorded(
            event_id="r",
            meeting_id="m1",
            chunk=0,
            chunks=1,
            positions=POSITIONS,
            entitlements=[Entitlement(nominee="Broker X", shares=entitlement)],
        )
    )
    return m


def test_r17_prorate_reduces_the_nominees_votes_to_its_entitlement_by_largest_remainder():
    # Broker X's books: 2,000 + 4,000 = 6,000 shares; its DTC entitlement is 5,000.
    events = [
        cast("B-1", {"2": "for"}, channel="broker"),
        cast("B-2", {"2": {"for": 1000, "against": 3000}}, channel="broker"),
    ]
    totals, report = counted(fold(events, overvoting_meeting()))
    # voted for 3,000, against 3,000: quotas 2,500 and 2,500 exactly.
    assert totals["2"] == {"for": 2500, "against": 2500}
    assert [(o.nominee, o.item_id, o.voted, o.counted) for o in report] == [
        ("Broker X", "2", {"for": 3000, "against": 3000}, {"for": 2500, "against": 2500})
    ]


def test_r17_prorate_gives_the_last_shares_to_the_largest_remainders_then_the_first_option():
    assert prorate({"for": 1, "against": 1, "abstain": 1}, ["for", "against", "abstain"], 2) == {
        "for": 1,
        "against": 1,
        "abstain": 0,
    }
    assert prorate({"for": 7, "against": 2}, ["for", "against"], 5) == {"for": 4, "against": 1}
    assert prorate({"for": 10, "against": 3}, ["for", "against"], 13) == {"for": 10, "against": 3}


def test_r17_reject_refuses_the_instruction_that_first_takes_the_nominee_over():
    first = cast("B-1", {"2": "for"}, executed=1, channel="broker")
    second = cast("B-2", {"2": "against"}, executed=2, channel="broker")
    tally = fold([first, second], overvoting_meeting("reject"))
    assert tally.item_totals()["2"] == {"for": 2000}
    assert tally.voters["B-2"].overvote_rejected == [(second.event_id, "2")]
    # The same control number may still vote within the entitlement afterwards.
    tally.apply(cast("B-2", {"2": {"against": 3000}}, shares=3000, executed=3, channel="broker"))
    assert tally.item_totals()["2"] == {"for": 2000, "against": 3000}


def contested_meeting():
    items = [
        Item(
            id=f"1.{i}",
            title=f"Nominee {i}",
            options=["for", "against", "abstain"],
            standard="plurality",
            group="1",
            seats=2,
            universal_proxy=True,
            recommendation="for" if i <= 2 else None,
        )
        for i in range(1, 5)
    ]
    items.append(
        Item(
            id="2",
            title="Auditor",
            options=["for", "against", "abstain"],
            standard="majority_of_votes_cast",
            routine=True,
            recommendation="for",
        )
    )
    return meeting(small_meeting(items=items))


def test_a_universal_proxy_card_marking_more_for_votes_than_seats_voids_only_its_director_votes():
    card = cast("R-1", {"1.1": "for", "1.2": "for", "1.3": "for", "2": "against"}, channel="mail", signatures=["Alice"])
    totals = fold([card], contested_meeting()).item_totals()
    assert all(totals[f"1.{i}"] == {} for i in range(1, 5)) and totals["2"] == {"against": 3000}


def test_an_under_marked_universal_proxy_card_votes_only_what_it_marks():
    card = cast("R-1", {"1.3": "for"}, channel="internet")
    totals = fold([card], contested_meeting()).item_totals()
    assert totals["1.3"] == {"for": 3000} and totals["1.1"] == {} and totals["2"] == {"for": 3000}


def test_a_universal_proxy_card_with_no_director_marks_votes_as_the_board_recommends():
    totals = fold([cast("R-1", {"2": "for"})], contested_meeting()).item_totals()
    assert totals["1.1"] == totals["1.2"] == {"for": 3000} and totals["1.3"] == {}


# --- Properties ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(submissions(), max_size=25), st.integers(0, 6000))
def test_r17_no_counted_tally_exceeds_a_nominees_entitlement(events, entitlement):
    m = overvoting_meeting(entitlement=entitlement)
    tally = fold(events, m)
    totals, report = counted(tally)
    for over in report:
        assert sum(over.counted.values()) == entitlement
    registered = {k: v for k, v in tally.buckets.items() if k[2] == "" and k[1] != "broker_non_vote"}
    for item in m.spec.items:
        by_registered = sum(v for (i, _o, _n), v in registered.items() if i == item.id)
        voted = sum(n for o, n in totals[item.id].items() if o != "broker_non_vote")
        assert voted - by_registered <= entitlement


@settings(max_examples=300, deadline=None)
@given(st.lists(submissions(), max_size=25))
def test_for_every_item_the_columns_and_not_voted_add_up_to_the_shares_present(events):
    tally = fold(events, overvoting_meeting(entitlement=4500))
    totals, _ = counted(tally)
    report = tally_report(tally.meeting.spec, tally.present, totals, as_of_position=0)
    for columns in report["items"].values():
        numbers = {k: v for k, v in columns.items() if k not in ("outcome", "margin")}
        assert all(v >= 0 for v in numbers.values())
        assert sum(numbers.values()) == tally.present


@settings(max_examples=200, deadline=None)
@given(st.lists(submissions(), max_size=30), st.integers(0, 30))
def test_an_incremental_fold_resumed_from_stored_state_equals_a_fold_from_scratch(events, cut):
    """What the projector does across restarts: fold, store voter states as JSON, load, go on."""
    first = fold(events[:cut], overvoting_meeting("reject"))
    resumed = Tally(
        meeting=first.meeting,
        present=first.present,
        present_count=first.present_count,
        buckets=first.buckets.copy(),
        events_applied=first.events_applied,
    )
    encoded = {n: msgspec.json.encode(s) for n, s in first.voters.items()}
    resumed.voters = {n: msgspec.json.decode(b, type=VoterState) for n, b in encoded.items()}
    for event in events[cut:]:
        resumed.apply(event)
    scratch = fold(events, overvoting_meeting("reject"))
    assert (resumed.present, dict(resumed.buckets)) == (scratch.present, dict(scratch.buckets))
    assert {n: v.overvote_rejected for n, v in resumed.voters.items()} == {
        n: v.overvote_rejected for n, v in scratch.voters.items()
    }


def test_shares_are_integers_everywhere():
    tally = fold([cast("B-2", {"2": {"for": 1, "against": 2}}, channel="broker")], overvoting_meeting(entitlement=2))
    totals, _ = counted(tally)
    assert all(type(v) is int for per_item in totals.values() for v in per_item.values())
    assert SHARES["B-2"] == 4000


@settings(max_examples=300, deadline=None)
@given(st.lists(submissions(), max_size=25), st.integers(0, 6000))
def test_r17_the_prorated_tally_equals_an_independent_naive_count(events, entitlement):
    from tests import reference_count

    m = overvoting_meeting(entitlement=entitlement)
    totals, _ = counted(fold(events, m))
    expected = reference_count.count(m.spec, m.positions, events, {"Broker X": entitlement})
    got = {
        k: {("broker_non_votes" if o == "broker_non_vote" else o): n for o, n in v.items() if n}
        for k, v in totals.items()
    }
    assert got == expected["items"]


@settings(max_examples=300, deadline=None)
@given(st.lists(submissions(), max_size=30), st.integers(1, 10), st.sampled_from(["prorate", "reject"]), st.booleans())
def test_folding_in_batches_equals_folding_event_by_event(events, batch, policy, settle_each):
    """The projector folds batches; a replay settles contributions once at the end; the live rule
    is event by event: all must agree."""
    one_by_one = fold(events, overvoting_meeting(policy, entitlement=4500))
    batched = Tally(meeting=overvoting_meeting(policy, entitlement=4500))
    for start in range(0, len(events), batch):
        batched.apply_many(events[start : start + batch], settle=settle_each)
    batched.settle()
    assert not batched.unsettled
    assert (batched.present, batched.present_count, dict(batched.buckets)) == (
        one_by_one.present,
        one_by_one.present_count,
        dict(one_by_one.buckets),
    )
    assert batched.voters == one_by_one.voters


def test_r17_the_over_vote_report_lists_options_in_ballot_order_whatever_order_the_buckets_come_in():
    events = [
        cast("B-1", {"2": "against"}, channel="broker"),
        cast("B-2", {"2": {"abstain": 1000, "for": 3000}}, channel="broker"),
    ]
    tally = fold(events, overvoting_meeting())
    spec, entitlements = tally.meeting.spec, tally.meeting.entitlements
    forward = counted_totals(spec, entitlements, dict(tally.buckets.items()))
    backward = counted_totals(spec, entitlements, dict(reversed(tally.buckets.items())))
    assert forward == backward
    options = next(item.options for item in spec.items if item.id == "2")
    for report in (forward[1], backward[1]):
        (over,) = report
        assert list(over.voted) == [o for o in options if o in over.voted]
        assert list(over.counted) == list(over.voted)

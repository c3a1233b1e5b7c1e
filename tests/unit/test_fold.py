"""The fold: effective instructions (R5-R7, R9, R10), quorum (R14), outcomes (R15), R16, R18."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.fold import BROKER_NON_VOTE, Tally
from projections.outcomes import outcomes, quorum, tally_report
from tests import reference_count
from tests.factories import POSITIONS, cast, meeting, revoke, small_meeting
from tests.strategies import CONTROL_NUMBERS, SHARES, submissions


def fold(events, m=None):
    tally = Tally(meeting=m or meeting())
    for event in events:
        tally.apply(event)
    return tally


def totals(tally):
    return tally.item_totals()


def test_r5_the_latest_dated_instruction_wins_even_when_it_arrives_first():
    internet = cast("R-1", {"2": "for"}, executed=50, received=50)
    mail = cast("R-1", {"2": "against"}, executed=10, received=60, channel="mail", signatures=["Alice"])
    for order in ([internet, mail], [mail, internet]):
        assert totals(fold(order))["2"] == {"for": 3000}


def test_r5_ties_on_date_go_to_the_later_receipt_then_the_greater_event_id():
    a = cast("R-1", {"2": "for"}, executed=5, received=6, event_id="a")
    b = cast("R-1", {"2": "against"}, executed=5, received=7, event_id="b")
    c = cast("R-1", {"2": "abstain"}, executed=5, received=7, event_id="c")
    assert totals(fold([c, b, a]))["2"] == {"abstain": 3000}
    assert totals(fold([b, a]))["2"] == {"against": 3000}


def test_r6_an_in_person_ballot_revokes_every_proxy_whatever_its_date():
    ballot = cast("R-1", {"2": "against"}, executed=10, channel="in_person")
    later_card = cast("R-1", {"2": "for"}, executed=20, channel="mail", signatures=["Alice"])
    assert totals(fold([ballot, later_card]))["2"] == {"against": 3000}


def test_r7_a_revocation_voids_earlier_instructions_and_a_later_one_counts_again():
    early = cast("R-1", {"2": "for"}, executed=1)
    tally = fold([early, revoke("R-1", executed=2)])
    assert tally.present == 0 and totals(tally)["2"] == {}
    tally.apply(cast("R-1", {"2": "against"}, executed=3, channel="phone"))
    assert tally.present == 3000 and totals(tally)["2"] == {"against": 3000}


def test_r9_a_registered_card_votes_unmarked_items_as_the_board_recommends():
    t = totals(fold([cast("R-1", {"2": "against"})]))
    assert t["1.1"] == {"for": 3000} and t["5"] == {"3y": 3000} and t["2"] == {"against": 3000}


def test_r9_r16_a_beneficial_instruction_leaves_unmarked_non_routine_items_as_broker_non_votes():
    t = totals(fold([cast("B-1", {"2": "for", "3": "against"}, channel="broker")]))
    assert t["2"] == {"for": 2000}
    assert t["3"] == {"against": 2000}
    assert t["1.1"] == {BROKER_NON_VOTE: 2000} and t["5"] == {BROKER_NON_VOTE: 2000}


def test_r10_a_discretionary_vote_is_present_and_a_broker_non_vote_on_non_routine_items():
    tally = fold([cast("B-2", {"2": "for"}, channel="broker", discretionary=True)])
    assert tally.present == 4000
    assert totals(tally)["2"] == {"for": 4000} and totals(tally)["3"] == {BROKER_NON_VOTE: 4000}


def test_r10_the_owners_instruction_supersedes_a_later_discretionary_vote():
    owner = cast("B-2", {"2": "against", "3": "for"}, executed=1, channel="broker")
    discretion = cast("B-2", {"2": "for"}, executed=5, channel="broker", discretionary=True)
    assert totals(fold([discretion, owner]))["2"] == {"against": 4000}


def test_r3_split_shares_left_unassigned_are_present_but_not_voted():
    tally = fold([cast("R-1", {"2": {"for": 600, "against": 400}}, shares=1500)])
    assert tally.present == 1500 and totals(tally)["2"] == {"for": 600, "against": 400}


def test_r14_quorum_is_exact_at_the_one_third_boundary():
    spec = small_meeting(outstanding=9001)
    assert quorum(spec, 3000) == {"required": 3001, "present": 3000, "met": False}
    assert quorum(spec, 3001)["met"] is True
    assert quorum(small_meeting(outstanding=89_467_190), 0)["required"] == 29_822_397


def test_r15_outcomes_follow_each_standard_and_report_ties():
    spec = small_meeting()
    t = {
        "1.1": {"for": 10},
        "1.2": {"for": 10},
        "2": {"for": 5, "against": 5},
        "3": {"for": 6, "against": 5},
        "5": {"1y": 3, "3y": 3},
    }
    assert outcomes(spec, t, met=True) == {"1.1": "elected", "1.2": "elected", "2": "tie", "3": "passed", "5": "tie"}
    assert set(outcomes(spec, t, met=False).values()) == {"no_quorum"}


def test_r15_plurality_elects_the_most_voted_and_reports_a_tie_at_the_last_seat():
    from events import Item

    items = [
        Item(id=f"1.{i}", title="", options=["for", "against", "abstain"], standard="plurality", group="1", seats=2)
        for i in range(1, 4)
    ]
    spec = small_meeting(items=items)
    assert outcomes(spec, {"1.1": {"for": 9}, "1.2": {"for": 5}, "1.3": {"for": 5}}, True) == {
        "1.1": "elected",
        "1.2": "tie",
        "1.3": "tie",
    }
    assert outcomes(spec, {"1.1": {"for": 9}, "1.2": {"for": 6}, "1.3": {"for": 5}}, True) == {
        "1.1": "elected",
        "1.2": "elected",
        "1.3": "not_elected",
    }


def test_the_tally_report_has_the_domain_contracts_shape():
    report = tally_report(small_meeting(), 3000, totals(fold([cast("R-1", {})])), as_of_position=7)
    assert report["quorum"] == {"required": 3334, "present": 3000, "met": False}
    assert report["items"]["5"] == {
        "1y": 0,
        "2y": 0,
        "3y": 3000,
        "abstain": 0,
        "broker_non_votes": 0,
        "not_voted": 0,
        "outcome": "no_quorum",
        "margin": 3000,  # 3y over the runner-up: the standard's margin, quorum or not
    }


# --- Properties ---------------------------------------------------------------------------------


def snapshot(tally):
    return tally.present, dict(tally.buckets)


@settings(max_examples=300, deadline=None)
@given(st.lists(submissions(), max_size=25), st.randoms(use_true_random=False))
def test_r5_r18_any_permutation_or_duplication_of_the_events_gives_the_same_tally(events, rnd):
    shuffled = list(events) + [rnd.choice(events) for _ in range(len(events) // 2)] if events else []
    rnd.shuffle(shuffled)
    assert snapshot(fold(events)) == snapshot(fold(shuffled))


@settings(max_examples=300, deadline=None)
@given(st.lists(submissions(), max_size=25))
def test_the_incremental_fold_equals_an_independent_naive_count(events):
    tally = fold(events)
    expected = reference_count.count(small_meeting(), {p.control_number: p for p in POSITIONS}, events)
    got = {
        k: {("broker_non_votes" if o == BROKER_NON_VOTE else o): n for o, n in v.items()}
        for k, v in totals(tally).items()
    }
    assert tally.present == expected["present"]
    assert got == expected["items"]


@settings(max_examples=200, deadline=None)
@given(st.lists(submissions(), max_size=25))
def test_for_every_item_the_columns_never_exceed_the_shares_present(events):
    tally = fold(events)
    for item_totals in totals(tally).values():
        assert sum(item_totals.values()) <= tally.present
    assert tally.present <= sum(SHARES.values())


def test_a_large_random_meeting_folds_identically_in_reverse_order():
    rnd = random.Random(7)
    events = [
        cast(
            rnd.choice(CONTROL_NUMBERS),
            {"2": rnd.choice(["for", "against"])},
            executed=rnd.randint(0, 500),
            channel="phone",
        )
        for _ in range(2000)
    ]
    events = [e for e in events if not e.control_number.startswith("B")]
    assert snapshot(fold(events)) == snapshot(fold(list(reversed(events))))


def test_r15_nominees_without_for_votes_are_not_elected_even_when_tied_for_the_last_seat():
    from events import Item

    items = [
        Item(id=f"1.{i}", title="", options=["for", "against", "abstain"], standard="plurality", group="1", seats=2)
        for i in range(1, 4)
    ]
    assert outcomes(small_meeting(items=items), {}, True) == {
        "1.1": "not_elected",
        "1.2": "not_elected",
        "1.3": "not_elected",
    }

"""Each item's margin in the tally JSON, by its own standard (R15), and its sign against the outcome."""

from hypothesis import given, settings
from hypothesis import strategies as st

from events import Item
from projections.outcomes import margin, outcomes, tally_report
from tests.factories import small_meeting


def directors(count: int, seats: int, group: str = "1") -> list[Item]:
    """``count`` nominees of one plurality group filling ``seats``."""
    return [
        Item(
            id=f"{group}.{i}",
            title=f"Nominee {i}",
            options=["for", "against", "abstain"],
            standard="plurality",
            recommendation="for",
            group=group,
            seats=seats,
        )
        for i in range(1, count + 1)
    ]


def margins(spec, totals):
    return {item.id: margin(spec, totals, item.id) for item in spec.items}


def test_a_majority_item_margin_is_for_minus_against_positive_passing_negative_failing_zero_tied():
    spec = small_meeting()
    assert margin(spec, {"2": {"for": 700, "against": 300, "abstain": 5000}}, "2") == 400
    assert margin(spec, {"3": {"for": 300, "against": 700}}, "3") == -400
    assert margin(spec, {"3": {"for": 500, "against": 500}}, "3") == 0
    assert outcomes(spec, {"3": {"for": 500, "against": 500}}, met=True)["3"] == "tie"


def test_abstentions_and_broker_non_votes_do_not_move_a_majority_items_margin():
    spec = small_meeting()
    assert margin(spec, {"3": {"for": 10, "against": 4, "abstain": 900, "broker_non_vote": 900}}, "3") == 6


def test_an_item_nobody_voted_on_has_a_zero_margin_whatever_its_standard():
    spec = small_meeting(items=[*small_meeting().items, *directors(3, 2, group="7")])
    assert set(margins(spec, {}).values()) == {0}
    assert outcomes(spec, {}, met=True) == {
        "1.1": "not_elected",
        "1.2": "not_elected",
        "2": "tie",
        "3": "tie",
        "5": "no_votes",
        "7.1": "not_elected",
        "7.2": "not_elected",
        "7.3": "not_elected",
    }


def test_a_frequency_margin_is_the_leading_choice_over_the_runner_up_and_abstain_is_no_choice():
    spec = small_meeting()
    assert margin(spec, {"5": {"1y": 100, "2y": 250, "3y": 900, "abstain": 5000}}, "5") == 650
    assert margin(spec, {"5": {"2y": 40}}, "5") == 40  # the runner-up has none
    assert margin(spec, {"5": {"1y": 300, "3y": 300, "2y": 10}}, "5") == 0
    assert outcomes(spec, {"5": {"1y": 300, "3y": 300, "2y": 10}}, met=True)["5"] == "tie"


def test_uncontested_nominees_margin_is_their_for_votes_as_for_above_zero_elects():
    spec = small_meeting()  # 2 nominees for 2 seats
    totals = {"1.1": {"for": 900, "against": 5000}, "1.2": {"against": 300}}
    assert margins(spec, totals)["1.1"] == 900  # Against has no effect in a plurality (R15)
    assert margins(spec, totals)["1.2"] == 0
    assert outcomes(spec, totals, met=True)["1.2"] == "not_elected"


def test_an_elected_nominee_leads_the_first_left_out_and_one_left_out_trails_the_last_elected():
    spec = small_meeting(items=directors(4, 2))
    totals = {"1.1": {"for": 900}, "1.2": {"for": 600}, "1.3": {"for": 450}, "1.4": {"for": 100}}
    assert outcomes(spec, totals, met=True) == {
        "1.1": "elected",
        "1.2": "elected",
        "1.3": "not_elected",
        "1.4": "not_elected",
    }
    # The last elected (600) leads the first left out (450) by 150: the election's own margin.
    assert margins(spec, totals) == {"1.1": 450, "1.2": 150, "1.3": -150, "1.4": -500}


def test_nominees_tied_at_the_last_seat_have_a_zero_margin_and_those_above_lead_the_tie():
    spec = small_meeting(items=directors(4, 2))
    totals = {"1.1": {"for": 900}, "1.2": {"for": 500}, "1.3": {"for": 500}, "1.4": {"for": 100}}
    assert outcomes(spec, totals, met=True) == {"1.1": "elected", "1.2": "tie", "1.3": "tie", "1.4": "not_elected"}
    assert margins(spec, totals) == {"1.1": 400, "1.2": 0, "1.3": 0, "1.4": -400}


def test_each_plurality_group_is_measured_within_itself():
    spec = small_meeting(items=[*directors(2, 1, group="1"), *directors(2, 1, group="2")])
    totals = {"1.1": {"for": 50}, "1.2": {"for": 30}, "2.1": {"for": 1000}, "2.2": {"for": 5000}}
    assert margins(spec, totals) == {"1.1": 20, "1.2": -20, "2.1": -4000, "2.2": 4000}


def test_the_tally_json_gives_each_item_its_margin_and_a_failing_item_a_negative_one():
    spec = small_meeting()
    totals = {
        "1.1": {"for": 4000},
        "1.2": {"for": 3000, "against": 1000},
        "2": {"for": 3000, "against": 1000},
        "3": {"for": 1000, "against": 3000},
        "5": {"3y": 3000, "1y": 1000},
    }
    report = tally_report(spec, 4000, totals, as_of_position=9)
    assert {i: (c["outcome"], c["margin"]) for i, c in report["items"].items()} == {
        "1.1": ("elected", 4000),
        "1.2": ("elected", 3000),
        "2": ("passed", 2000),
        "3": ("failed", -2000),
        "5": ("3y", 2000),
    }


def test_without_quorum_the_margin_is_still_the_standards_while_every_outcome_is_no_quorum():
    spec = small_meeting(outstanding=1_000_000)
    report = tally_report(spec, 4000, {"3": {"for": 1000, "against": 3000}}, as_of_position=9)
    assert report["quorum"]["met"] is False
    assert (report["items"]["3"]["outcome"], report["items"]["3"]["margin"]) == ("no_quorum", -2000)


# --- Properties ---------------------------------------------------------------------------------

SHARES = st.integers(0, 5)  # small numbers: ties and zeros come up often


def voted(item: Item):
    """Totals of one item: a few shares on each option (broker non-votes too, which count for nothing)."""
    options = [*item.options, "broker_non_vote"]
    return st.fixed_dictionaries({option: SHARES for option in options})


@st.composite
def meetings_and_totals(draw):
    nominees = draw(st.integers(1, 5))
    seats = draw(st.integers(1, nominees))
    spec = small_meeting(items=[*directors(nominees, seats), *small_meeting().items[2:]])
    totals = {item.id: draw(voted(item)) for item in spec.items}
    return spec, totals


@settings(max_examples=500, deadline=None)
@given(meetings_and_totals())
def test_r15_a_positive_margin_is_a_winning_outcome_a_negative_one_a_losing_one_and_zero_the_line(case):
    spec, totals = case
    won = outcomes(spec, totals, met=True)
    for item in spec.items:
        m, outcome = margin(spec, totals, item.id), won[item.id]
        if item.standard == "majority_of_votes_cast":
            assert outcome == ("passed" if m > 0 else "failed" if m < 0 else "tie")
        elif item.standard == "frequency":
            assert m >= 0 and (outcome in item.options) == (m > 0)  # 0: a tie or no votes
        elif m > 0:
            assert outcome == "elected"
        elif m < 0:
            assert outcome == "not_elected"
        else:  # at the line: a tie at the last seat, or nobody's For votes (which elect nobody, R15)
            assert outcome == "tie" or totals[item.id]["for"] == 0


@settings(max_examples=200, deadline=None)
@given(meetings_and_totals())
def test_r15_a_plurality_groups_last_elected_leads_its_first_left_out_by_the_same_margin_both_ways(case):
    spec, totals = case
    members = [item for item in spec.items if item.standard == "plurality"]
    seats = members[0].seats
    if len(members) > seats:
        ranked = sorted(members, key=lambda item: -totals[item.id]["for"])
        last_in, first_out = ranked[seats - 1], ranked[seats]
        lead = totals[last_in.id]["for"] - totals[first_out.id]["for"]
        assert margin(spec, totals, last_in.id) == lead == -margin(spec, totals, first_out.id)

"""Time travel and tally diffs: the tally at any log prefix, and changes explained per control number."""

from hypothesis import given, settings
from hypothesis import strategies as st

from events import Entitlement, PollsClosed, PositionsRecorded, VoteCast, VoteRevoked
from projections.diff import diff, replay_to, report_of
from projections.fold import BROKER_NON_VOTE
from projections.replay import Projection
from tests.factories import POSITIONS, at, cast, revoke, small_meeting
from tests.strategies import submissions


def register(entitlement=6000):
    """The small meeting's register, Broker X entitled to ``entitlement`` shares."""
    return PositionsRecorded(
        event_id="reg-m1",
        meeting_id="m1",
        chunk=0,
        chunks=1,
        positions=list(POSITIONS),
        entitlements=[Entitlement(nominee="Broker X", shares=entitlement)],
    )


def logged(*events, spec=None, entitlement=6000):
    """(position, event) of a log holding the meeting, its register, then ``events``."""
    return list(enumerate([spec or small_meeting(), register(entitlement), *events], start=1))


def tally_at(entries, position):
    return replay_to(entries, position).tallies.get("m1")


def diff_between(entries, start, end):
    lo, hi = sorted((start, end))
    window = [(p, e) for p, e in entries if lo < p <= hi]
    return diff(tally_at(entries, start), tally_at(entries, end), start, end, window)


def test_time_travel_to_a_position_counts_only_what_was_logged_by_then():
    entries = logged(cast("R-1", {"2": "for"}, executed=1), cast("R-1", {"2": "against"}, executed=2))
    assert report_of(tally_at(entries, 3), 3)["items"]["2"]["for"] == 3000
    assert report_of(tally_at(entries, 4), 4)["items"]["2"]["against"] == 3000
    assert tally_at(entries, 1).present == 0 and tally_at(entries, 0) is None


def test_r12_time_travel_counts_a_late_ballot_until_the_closure_is_logged_and_not_after():
    card = cast("R-1", {"2": "for"}, executed=30)
    late = cast("R-1", {"2": "against"}, executed=24 * 30 + 1, channel="in_person")
    closure = PollsClosed(event_id="close", meeting_id="m1", closed_at=at(24 * 30 + 0.5))
    entries = logged(card, late, closure)
    assert report_of(tally_at(entries, 4), 4)["items"]["2"]["against"] == 3000
    assert report_of(tally_at(entries, 5), 5)["items"]["2"]["for"] == 3000
    change = diff_between(entries, 4, 5)
    assert change["items"]["2"]["for"] == 3000 and change["items"]["2"]["against"] == -3000
    (r1,) = change["control_numbers"]
    assert r1["events"] == [{"position": 5, "event_id": "close", "type": "polls.closed"}]


def test_r5_r7_a_diff_names_each_changed_control_number_with_its_change_and_the_events_causing_it():
    entries = logged(
        cast("R-1", {"2": "for"}, executed=1),
        cast("B-1", {"2": "for"}, executed=1, channel="broker"),
        revoke("R-1", executed=2, event_id="rev"),
        cast("R-1", {"2": "against"}, executed=3, event_id="again"),
    )
    change = diff_between(entries, 4, 6)
    assert change["quorum"]["present"] == {"from": 5000, "to": 5000, "delta": 0}
    assert change["items"]["2"]["for"] == -3000 and change["items"]["2"]["against"] == 3000
    assert change["items"]["2"]["outcome"] == {"from": "passed", "to": "failed"}
    assert change["items"]["2"]["margin"] == -6000  # For - Against from +3000 to -3000
    assert change["items"]["3"] == {
        "for": 0,
        "against": 0,
        "abstain": 0,
        "broker_non_votes": 0,
        "not_voted": 0,
        "outcome": {"from": "passed", "to": "passed"},
        "margin": 0,
    }
    assert change["control_numbers"] == [
        {
            "control_number": "R-1",
            "present": 0,
            "items": {"2": {"for": -3000, "against": 3000}},
            "events": [
                {"position": 5, "event_id": "rev", "type": "vote.revoked"},
                {"position": 6, "event_id": "again", "type": "vote.cast"},
            ],
        }
    ]
    assert change["overvote_adjustment"] == {}


# --- Properties ---------------------------------------------------------------------------------


@st.composite
def logs(draw):
    """An accepted-event log of the small meeting; prorating, rejecting, or never over; maybe a closure.

    Under `reject` the refusals depend on log order, and so may depend on when a late closure's
    refold runs (the projector refolds at the end of each batch), so closures come only with `prorate`.
    """
    policy, entitlement = draw(st.sampled_from([("prorate", 6000), ("prorate", 3000), ("reject", 3000)]))
    events = draw(st.lists(submissions(), max_size=20))
    if policy == "prorate" and draw(st.booleans()):
        closure = PollsClosed(event_id="close", meeting_id="m1", closed_at=at(draw(st.integers(0, 45))))
        events.insert(draw(st.integers(0, len(events))), closure)
    return logged(*events, spec=small_meeting(overvote_policy=policy), entitlement=entitlement)


@settings(max_examples=200, deadline=None)
@given(logs())
def test_r12_r17_the_tally_as_of_any_prefix_equals_the_incremental_fold_stopped_there(entries):
    live = Projection()
    for position, event in entries:
        # As the projector does with a batch of one row: fold it, then refold after a late closure.
        live.apply(event)
        for meeting_id, numbers in live.take_refolds().items():
            for number in sorted(numbers):
                mine = [
                    e
                    for p, e in entries
                    if p <= position and isinstance(e, (VoteCast, VoteRevoked)) and e.control_number == number
                ]
                live.tallies[meeting_id].refold(number, mine)
        travelled = tally_at(entries, position)
        assert report_of(travelled, position) == report_of(live.tallies["m1"], position)
        assert (travelled.present, dict(travelled.buckets)) == (
            live.tallies["m1"].present,
            dict(live.tallies["m1"].buckets),
        )


def voted(tally):
    """Voted shares per item and report column (before R17 proration)."""
    totals = {}
    for (item_id, option, _nominee), shares in tally.buckets.items():
        column = "broker_non_votes" if option == BROKER_NON_VOTE else option
        totals[(item_id, column)] = totals.get((item_id, column), 0) + shares
    return totals


@settings(max_examples=200, deadline=None)
@given(logs(), st.data())
def test_r17_diff_deltas_per_control_number_add_up_to_the_change_of_the_tally(entries, data):
    start = data.draw(st.integers(2, len(entries)))
    end = data.draw(st.integers(2, len(entries)))
    change = diff_between(entries, start, end)
    old, new = report_of(tally_at(entries, start), start), report_of(tally_at(entries, end), end)
    assert (
        change["quorum"]["present"]["delta"]
        == new["quorum"]["present"] - old["quorum"]["present"]
        == sum(c["present"] for c in change["control_numbers"])
    )
    summed = {}
    for c in change["control_numbers"]:
        assert c["events"], "every change has a cause between the two positions"
        for item_id, columns in c["items"].items():
            for column, shares in columns.items():
                summed[(item_id, column)] = summed.get((item_id, column), 0) + shares
    for item_id, counts in new["items"].items():
        for column, value in counts.items():
            if column == "outcome":
                continue
            delta = value - old["items"][item_id][column]
            assert change["items"][item_id][column] == delta
            if column == "margin":
                continue  # not a column: it follows from the columns, no control number's own
            adjust = change["overvote_adjustment"].get(item_id, {}).get(column, 0)
            assert summed.get((item_id, column), 0) + adjust == delta
    # In voted shares (before proration) the control numbers alone explain every change.
    before, after = voted(tally_at(entries, start)), voted(tally_at(entries, end))
    for key in set(before) | set(after):
        assert summed.get(key, 0) == after.get(key, 0) - before.get(key, 0)
    if entries[1][1].entitlements[0].shares == 6000:  # Broker X can never be over: nothing prorated
        assert change["overvote_adjustment"] == {}

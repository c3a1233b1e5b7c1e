"""Tally.received_after: the control numbers a late-logged poll closure refolds (R12), as late_voters said before."""

from projections.replay import replay
from tests.factories import at, cast, register_event, small_meeting


def test_the_control_numbers_holding_a_submission_received_after_a_time_are_exactly_those_a_closure_refolds():
    votes = [cast("R-1", {"2": "for"}, executed=1), cast("R-2", {"2": "for"}, executed=3), cast("B-1", {}, executed=5)]
    tally = replay([small_meeting(), register_event(), *votes]).tallies["m1"]
    assert tally.received_after(at(2)) == {"R-2", "B-1"}
    assert tally.received_after(at(5)) == set()  # received at the time itself: not after it

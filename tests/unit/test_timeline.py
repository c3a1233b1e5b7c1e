"""The timeline's pure parts: bucket widths, and shares present at each bucket's end by one replay (no I/O)."""

from __future__ import annotations

from events import PollsClosed
from projections.diff import replay_to
from projections.timeline import MAX_POINTS, NICE_WIDTHS, bucket_width, present_series
from tests.factories import at, cast, register_event, revoke, small_meeting


def test_the_automatic_width_gives_at_most_300_points_and_the_smallest_nice_width_that_does():
    assert bucket_width(0) == 1 and bucket_width(300) == 1 and bucket_width(301) == 2
    for span in (30, 3_600, 86_400, 45 * 86_400):
        width = bucket_width(span)
        assert span / width <= MAX_POINTS
        smaller = [w for w in NICE_WIDTHS if w < width]
        assert not smaller or span / smaller[-1] > MAX_POINTS
    assert 100 <= 45 * 86_400 / bucket_width(45 * 86_400) <= 300  # a 45-day campaign: 100-300 points


def test_shares_present_at_each_end_equal_a_replay_from_scratch_to_that_position():
    events = [
        small_meeting(),
        register_event(),
        cast("R-1", {"2": "for"}, executed=1),
        cast("B-1", {"2": "for"}, executed=2, channel="broker"),
        revoke("R-1", executed=3),
        cast("R-2", {"3": "against"}, executed=4, channel="phone", shares=333),
        cast("B-2", {"2": "for"}, executed=50, channel="broker"),  # received after the closure below
        PollsClosed(event_id="close", meeting_id="m1", closed_at=at(10)),  # logged late: B-2 is refolded out (R12)
        cast("R-1", {"2": "against"}, executed=5),
    ]
    entries = list(enumerate(events, start=1))
    ends = [1, 2, 3, 4, 5, 6, 7, 8, 8, 9]
    expected = []
    for end in ends:
        tally = replay_to(entries, end).tallies.get("m1")
        expected.append(tally.present if tally is not None else 0)
    assert present_series(entries, "m1", ends) == expected
    assert expected[6] == 2000 + 333 + 4000 and expected[7] == 2000 + 333  # the late closure took B-2 out
